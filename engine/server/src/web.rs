//! The browser pages under `/app`: sign-in, lists, record forms with lines, history and
//! the custom-field admin, rendered by `platform-web-renderer` from the same form and
//! list schemas the API publishes.
//!
//! Every read and write goes through the REST API's own router in-process (a `oneshot`
//! request carrying the signed-in user's token), so validation, plugins, audit events,
//! the outbox, idempotency and optimistic locking are exactly those of the API; this
//! module only translates between HTML forms and JSON.
//!
//! Sessions: signing in checks an argon2id hash in `engine.web_users` and sets the same
//! HS256 JWT the API takes in an `HttpOnly; SameSite=Strict` cookie. Every POST must
//! come from this origin (`Origin`/`Referer` checked) and carry a CSRF token derived
//! from the session token (`_csrf`), which a page of another site cannot read.

use crate::app::App;
use crate::auth::Principal;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use platform_metadata::Action;
use platform_web_renderer::url::{encode, with_query};
use platform_web_renderer::view::NavItem;
use platform_web_renderer::{form_to_json, Chrome, FieldError, FormOptions, ListState, Renderer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use uuid::Uuid;

/// The session cookie's name.
pub const COOKIE: &str = "platform_session";
/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 8;
/// Rows on a list page.
const PAGE_SIZE: usize = 25;
/// Roles that see the custom-field admin (the Metadata API checks again).
const ADMIN_ROLES: &[&str] = crate::metadata_api::TENANT_ADMIN_ROLES;

/// What the pages share: the engine, the API router they call, the templates.
struct Web {
    app: Arc<App>,
    /// Display names by user name, read from `engine.web_users` once per process.
    names: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The REST API's router, built on first use (building it here would recurse).
    api: OnceLock<Router>,
    pages: Renderer,
}

type W = State<Arc<Web>>;

/// The `/app` routes, merged into the engine's router.
pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let web = Arc::new(Web {
        app,
        names: Default::default(),
        api: OnceLock::new(),
        pages: Renderer::new(),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/app") }))
        .route("/app", get(home))
        .route("/app/", get(|| async { Redirect::to("/app") }))
        .route("/app/login", get(login_page).post(login))
        .route("/app/logout", post(logout))
        .route("/app/assets/{name}", get(asset))
        .route("/app/o/{object}", get(list_page))
        .route("/app/o/{object}/new", get(new_page).post(create))
        .route("/app/o/{object}/lookup", get(lookup))
        .route("/app/o/{object}/{id}", get(edit_page).post(update))
        .route("/app/o/{object}/{id}/history", get(history_page))
        .route("/app/o/{object}/{id}/delete", post(delete))
        .route("/app/o/{object}/{id}/transitions/{name}", post(transition))
        .route(
            "/app/admin/fields/{object}",
            get(admin_page).post(admin_add),
        )
        .route("/app/admin/users", get(users_page).post(users_add))
        .route("/app/{*rest}", get(not_found))
        .with_state(web)
}

// ---------------------------------------------------------------------------------
// Users

/// Hashes a password as an argon2id PHC string (random salt, default parameters).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// A hash no password matches, verified for unknown users so that they take as long
/// to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&Uuid::new_v4().to_string()).unwrap_or_default())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates or replaces a sign-in for `tenant`.
pub async fn upsert_user(
    app: &App,
    tenant: Uuid,
    username: &str,
    display_name: &str,
    password: &str,
    roles: &[&str],
) -> anyhow::Result<()> {
    let pw = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw)).await??;
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    sqlx::query(
        "INSERT INTO engine.web_users (username, tenant_id, display_name, password_hash, roles)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (username) DO UPDATE SET tenant_id = $2, display_name = $3, password_hash = $4, roles = $5",
    )
    .bind(username.to_lowercase())
    .bind(tenant)
    .bind(display_name)
    .bind(hash)
    .bind(roles)
    .execute(&app.db.admin)
    .await?;
    Ok(())
}

/// The demo tenant's sign-in (`demo` / `demo`, an administrator), made by
/// `platform serve --demo` when missing.
pub async fn seed_demo_user(app: &App) -> anyhow::Result<()> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM engine.web_users WHERE username = 'demo')",
    )
    .fetch_one(&app.db.admin)
    .await?;
    if !exists {
        upsert_user(
            app,
            crate::demo::DEMO_TENANT,
            "demo",
            "Demo Clerk",
            "demo",
            &["admin"],
        )
        .await?;
        tracing::info!("demo sign-in created: user demo, password demo (http://<addr>/app)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Sessions and CSRF

/// The signed-in user of a request.
struct Session {
    principal: Principal,
    /// The user's display name.
    display: String,
    token: String,
    csrf: String,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of a session: derived from its secret token, so only a page that
/// was served to the cookie's holder knows it.
fn csrf_token(token: &str) -> String {
    hex::encode(&Sha256::digest(format!("platform-csrf\0{token}"))[..16])
}

fn session(web: &Web, headers: &HeaderMap) -> Option<Session> {
    let token = cookie_value(headers, COOKIE)?;
    let principal = web.app.jwt.verify(token).ok()?;
    let display = web
        .names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&principal.user)
        .cloned()
        .unwrap_or_else(|| principal.user.clone());
    Some(Session {
        principal,
        display,
        csrf: csrf_token(token),
        token: token.to_string(),
    })
}

/// The session, or a redirect to the sign-in page that comes back here.
async fn require(
    web: &Web,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Session, Response> {
    let Some(mut s) = session(web, headers) else {
        let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/app");
        return Err(Redirect::to(&with_query("/app/login", &[("next", next)])).into_response());
    };
    if s.display == s.principal.user {
        let name: Option<String> =
            sqlx::query_scalar("SELECT display_name FROM engine.web_users WHERE username = $1")
                .bind(&s.principal.user)
                .fetch_optional(&web.app.db.admin)
                .await
                .ok()
                .flatten();
        if let Some(name) = name {
            web.names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(s.principal.user.clone(), name.clone());
            s.display = name;
        }
    }
    Ok(s)
}

/// Whether a POST comes from a page of this origin: `Origin` (or, without it,
/// `Referer`) must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match from {
        // Browsers send Origin on every cross-site POST; a client without either
        // header is not a browser a forged page could drive.
        None => true,
        Some(o) => {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            rest.split('/').next() == Some(host)
        }
    }
}

/// A form posted by a signed-in user: the session, the form's fields (after the origin
/// and CSRF checks) and the request id to pass on to the API.
async fn posted(
    web: &Web,
    req: Request,
) -> Result<(Session, Vec<(String, String)>, String), Response> {
    let uri = req.uri().clone();
    let s = require(web, req.headers(), &uri).await?;
    let request_id = request_id(req.headers());
    let pairs = form_post(web, Some(&s), req).await?;
    Ok((s, pairs, request_id))
}

/// Headers of an API call made for a page: its request id, and If-Match when the form
/// carried the record's version.
fn api_headers(request_id: String, version: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![("x-request-id", request_id)];
    if !version.is_empty() {
        headers.push(("if-match", format!("\"{version}\"")));
    }
    headers
}

/// A submitted form as pairs, after the origin and CSRF checks.
async fn form_post(
    web: &Web,
    s: Option<&Session>,
    req: Request,
) -> Result<Vec<(String, String)>, Response> {
    if !same_origin(req.headers()) {
        return Err(web.error(
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), crate::http::MAX_BODY)
        .await
        .map_err(|_| {
            web.error(
                None,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is larger than the server takes.",
            )
        })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
        web.error(
            None,
            StatusCode::BAD_REQUEST,
            "Bad form",
            "The form could not be read.",
        )
    })?;
    if let Some(s) = s {
        let given = pairs
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), s.csrf.as_bytes()) {
            return Err(web.error(
                Some(s),
                StatusCode::FORBIDDEN,
                "Refused",
                "The form's security token does not match your session. Reload the page and try again.",
            ));
        }
    }
    Ok(pairs)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Only local paths under /app are followed after sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/app") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/app"
    }
}

// ---------------------------------------------------------------------------------
// Responses

/// Headers every HTML page carries: no caching of data, a strict content policy (no
/// inline script or style), no framing.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

impl Web {
    fn api(&self) -> Router {
        self.api
            .get_or_init(|| crate::http::router(self.app.clone()))
            .clone()
    }

    /// A request to the REST API as the signed-in user.
    async fn call(
        &self,
        s: &Session,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Reply {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", s.token));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = match req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => return Reply::internal(e),
        };
        let resp = match self.api().oneshot(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    async fn get(&self, s: &Session, uri: &str) -> Reply {
        self.call(s, Method::GET, uri, None, &[]).await
    }

    fn chrome(&self, s: &Session, current: Option<&str>) -> Chrome {
        let meta = self.app.meta();
        let p = &s.principal;
        let mut nav: Vec<NavItem> = meta
            .catalog
            .objects()
            .filter(|o| !o.def.child)
            .filter_map(|o| self.app.object_for(&meta, p.tenant, o.name()))
            .filter(|o| o.allows(&p.roles, Action::Read))
            .map(|o| NavItem {
                object: o.name().to_string(),
                label: o.plural_label(),
                description: o.def.description.clone(),
            })
            .collect();
        nav.sort_by(|a, b| a.label.cmp(&b.label));
        Chrome {
            user: s.display.clone(),
            username: p.user.clone(),
            csrf: s.csrf.clone(),
            nav,
            current: current.map(String::from),
            can_admin: p.roles.iter().any(|r| ADMIN_ROLES.contains(&r.as_str())),
        }
    }

    fn render(
        &self,
        status: StatusCode,
        page: Result<String, platform_web_renderer::RenderError>,
    ) -> Response {
        match page {
            Ok(body) => html(status, body),
            Err(e) => {
                tracing::error!(error = %e, "a page failed to render");
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>This page could not be shown; the error has been logged.</p>".into(),
                )
            }
        }
    }

    fn error(
        &self,
        s: Option<&Session>,
        status: StatusCode,
        title: &str,
        message: &str,
    ) -> Response {
        let chrome = s.map(|s| self.chrome(s, None));
        self.render(
            status,
            self.pages
                .error_page(chrome.as_ref(), status.as_u16(), title, message),
        )
    }

    /// The page for an API answer that is not a success.
    fn api_error(&self, s: &Session, r: &Reply) -> Response {
        let title = match r.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Signed out",
            _ => "Something went wrong",
        };
        self.error(Some(s), r.status, title, &r.message())
    }
}

/// An answer of the REST API.
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    fn internal(e: impl std::fmt::Display) -> Reply {
        tracing::error!(error = %e, "cannot build an API request");
        Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({"error": "internal", "message": "an internal error occurred"}),
        }
    }
    fn ok(&self) -> bool {
        self.status.is_success()
    }
    fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .unwrap_or("The request failed.")
            .to_string()
    }
    /// The API's validation issues as field errors.
    fn issues(&self) -> Vec<FieldError> {
        self.body["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| FieldError {
                field: d["field"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("$.")
                    .trim_start_matches('$')
                    .to_string(),
                message: d["message"].as_str().unwrap_or("is not valid").to_string(),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Sign-in

#[derive(serde::Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_page(State(web): W, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    if session(&web, &headers).is_some() {
        return see_other(safe_next(&q.next));
    }
    web.render(
        StatusCode::OK,
        web.pages.login_page(safe_next(&q.next), "", None),
    )
}

async fn login(State(web): W, req: Request) -> Response {
    // Behind a TLS-terminating proxy the cookie is sent over HTTPS only.
    let secure = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let pairs = match form_post(&web, None, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let username = field(&pairs, "username").trim().to_lowercase();
    let password = field(&pairs, "password").to_string();
    let next = safe_next(field(&pairs, "next")).to_string();
    /// Tenant, display name, password hash, roles.
    type UserRow = (Uuid, String, String, Vec<String>);
    let row: Result<Option<UserRow>, _> = sqlx::query_as(
        "SELECT tenant_id, display_name, password_hash, roles FROM engine.web_users WHERE username = $1",
    )
    .bind(&username)
    .fetch_optional(&web.app.db.admin)
    .await;
    let row = match row {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read web users");
            return web.error(
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Signing in is not possible right now; try again shortly.",
            );
        }
    };
    // An unknown user costs the same hash as a wrong password.
    let phc = match row.as_ref() {
        Some(r) => r.2.clone(),
        None => dummy_hash().to_string(),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let Some((tenant, _display, _, roles)) = row.filter(|_| ok) else {
        tracing::info!(user = %username, "sign-in refused");
        return web.render(
            StatusCode::UNAUTHORIZED,
            web.pages.login_page(
                &next,
                &username,
                Some("The user name or password is not right."),
            ),
        );
    };
    let _ = sqlx::query("UPDATE engine.web_users SET last_login_at = now() WHERE username = $1")
        .bind(&username)
        .execute(&web.app.db.admin)
        .await;
    let token = web.app.jwt.issue(
        tenant,
        &username,
        &roles,
        chrono::Duration::hours(SESSION_HOURS),
    );
    tracing::info!(user = %username, %tenant, "signed in");
    let mut r = see_other(&next);
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(web): W, req: Request) -> Response {
    let s = session(&web, req.headers());
    if let Err(r) = form_post(&web, s.as_ref(), req).await {
        return r;
    }
    let mut r = see_other("/app/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("platform_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ---------------------------------------------------------------------------------
// Assets

#[derive(serde::Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

async fn asset(Path(name): Path<String>, Query(q): Query<AssetQuery>) -> Response {
    let Some(a) = platform_web_renderer::assets::get(&name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    // A link with the current content hash may be kept for a year; anything else is
    // revalidated.
    let cache = if q.v.as_deref() == Some(platform_web_renderer::assets::version().as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        a.bytes,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------
// Pages

async fn home(State(web): W, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    web.render(StatusCode::OK, web.pages.home_page(&web.chrome(&s, None)))
}

async fn not_found(State(web): W, headers: HeaderMap) -> Response {
    let s = session(&web, &headers);
    web.error(
        s.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

/// The form schema of `object` (with its lifecycle when it has one), as the API gives it.
async fn form_schema(web: &Web, s: &Session, object: &str) -> Result<Value, Response> {
    let r = web
        .get(
            s,
            &format!("/api/v1/objects/{}/form-schema", encode(object)),
        )
        .await;
    if r.ok() {
        Ok(r.body)
    } else {
        Err(web.api_error(s, &r))
    }
}

/// Reference fields of `schema` whose target the caller may read (to expand them).
fn expandable(web: &Web, s: &Session, schema: &Value, names: &[String]) -> Vec<String> {
    let meta = web.app.meta();
    names
        .iter()
        .filter(|n| {
            let fs = &schema["fields"][n.as_str()];
            fs["type"] == "reference"
                && fs["target"]["object"].as_str().is_some_and(|t| {
                    web.app
                        .object_for(&meta, s.principal.tenant, t)
                        .is_some_and(|o| o.allows(&s.principal.roles, Action::Read))
                })
        })
        .cloned()
        .collect()
}

async fn list_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(object): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let r = web
        .get(
            &s,
            &format!("/api/v1/objects/{}/list-schema", encode(&object)),
        )
        .await;
    if !r.ok() {
        return web.api_error(&s, &r);
    }
    let schema = r.body;
    let all = |k: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let one = |k: &str| all(k).pop();
    let base = format!("/app/o/{object}");
    let mut st = ListState {
        base: base.clone(),
        q: one("q").unwrap_or_default(),
        filters: all("filter"),
        sort: one("sort"),
        cursor: one("cursor"),
        trail: all("trail"),
        ..Default::default()
    };
    // The "Add filter" form: field, condition and value become one filter.
    if let (Some(ff), Some(fo)) = (one("ff"), one("fo")) {
        let fv = one("fv").unwrap_or_else(|| {
            if fo == "is_null" {
                "true".into()
            } else {
                String::new()
            }
        });
        let mut filters = st.filters.clone();
        filters.push(format!("{ff}:{fo}:{fv}"));
        let mut q: Vec<(&str, &str)> = vec![("q", st.q.as_str())];
        for f in &filters {
            q.push(("filter", f));
        }
        if let Some(sort) = &st.sort {
            q.push(("sort", sort));
        }
        return see_other(&with_query(&base, &q));
    }
    st.flash = one("deleted").map(|_| "The record was deleted.".to_string());
    let columns: Vec<String> = schema["columns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut api_q: Vec<(String, String)> = Vec::new();
    for f in &st.filters {
        api_q.push(("filter".into(), f.clone()));
    }
    if !st.q.is_empty() {
        if let Some(tf) = schema["title_field"].as_str() {
            let textual = schema["filters"][tf]
                .as_array()
                .is_some_and(|ops| ops.iter().any(|o| o == "contains"));
            let op = if textual { "contains" } else { "eq" };
            api_q.push(("filter".into(), format!("{tf}:{op}:{}", st.q)));
        }
    }
    if let Some(sort) = &st.sort {
        api_q.push(("sort".into(), sort.clone()));
    }
    if let Some(c) = &st.cursor {
        api_q.push(("cursor".into(), c.clone()));
    }
    api_q.push(("limit".into(), PAGE_SIZE.to_string()));
    let expand = expandable(&web, &s, &schema, &columns);
    if !expand.is_empty() {
        api_q.push(("expand".into(), expand.join(",")));
    }
    let qs: Vec<(&str, &str)> = api_q
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = web
        .get(
            &s,
            &with_query(&format!("/api/v1/objects/{}/records", encode(&object)), &qs),
        )
        .await;
    let records: Vec<Value> = if r.ok() {
        st.next_cursor = r.body["next_cursor"].as_str().map(String::from);
        r.body["data"].as_array().cloned().unwrap_or_default()
    } else if r.status == StatusCode::BAD_REQUEST {
        let details: Vec<String> = r.issues().into_iter().map(|i| i.message).collect();
        st.error = Some(if details.is_empty() {
            r.message()
        } else {
            format!("This filter cannot be applied: {}", details.join("; "))
        });
        Vec::new()
    } else {
        return web.api_error(&s, &r);
    };
    let chrome = web.chrome(&s, Some(&object));
    web.render(
        StatusCode::OK,
        web.pages.list_page(&chrome, &schema, &records, &st),
    )
}

#[derive(serde::Deserialize)]
struct LookupQuery {
    #[serde(default)]
    q: String,
}

/// Reference search: `[{id, title}]` of records of `object` whose title contains `q`.
async fn lookup(
    State(web): W,
    headers: HeaderMap,
    Path(object): Path<String>,
    Query(q): Query<LookupQuery>,
) -> Response {
    let Some(s) = session(&web, &headers) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!([]))).into_response();
    };
    let r = web
        .get(
            &s,
            &format!("/api/v1/objects/{}/list-schema", encode(&object)),
        )
        .await;
    if !r.ok() {
        return (r.status, axum::Json(json!([]))).into_response();
    }
    let schema_fields = r.body["fields"].clone();
    let tf = r.body["title_field"].as_str().unwrap_or("id").to_string();
    let textual = r.body["filters"][&tf]
        .as_array()
        .is_some_and(|ops| ops.iter().any(|o| o == "contains"));
    let mut qs: Vec<(&str, String)> = vec![("limit", "10".into())];
    let q = q.q.trim().to_string();
    if !q.is_empty() && textual {
        qs.push(("filter", format!("{tf}:contains:{q}")));
    }
    if tf != "id" {
        qs.push(("sort", tf.clone()));
    }
    let pairs: Vec<(&str, &str)> = qs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = web
        .get(
            &s,
            &with_query(
                &format!("/api/v1/objects/{}/records", encode(&object)),
                &pairs,
            ),
        )
        .await;
    let items: Vec<Value> = r.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rec| {
            let id = rec["id"].as_str().unwrap_or("");
            let title = rec[tf.as_str()]
                .as_str()
                .filter(|t| !t.is_empty())
                .unwrap_or(id);
            let detail = rec["number"]
                .as_str()
                .filter(|n| tf != "number" && !n.is_empty());
            // The record's plain values, as its inputs would show them: a line's
            // inputs of the same name are filled from them when it is chosen (a
            // product's unit, price and tax rate).
            let values: Map<String, Value> = rec
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let kind = schema_fields[k.as_str()]["type"].as_str()?;
                    let shown = match (kind, v) {
                        ("decimal" | "percent", Value::String(n)) => {
                            json!(platform_web_renderer::view::trim_decimal(n))
                        }
                        ("reference" | "children" | "json" | "multi_picklist", _) => return None,
                        (_, Value::Null) => return None,
                        (_, v) => v.clone(),
                    };
                    Some((k.clone(), shown))
                })
                .collect();
            json!({"id": id, "title": title, "detail": detail, "values": values})
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(Value::Array(items)),
    )
        .into_response()
}

/// Titles of the records that lines reference (`lines[0].product` -> "Consulting"),
/// read one per distinct record.
async fn line_titles(web: &Web, s: &Session, schema: &Value, record: &Value) -> Map<String, Value> {
    let mut titles = Map::new();
    let mut cache: std::collections::HashMap<(String, String), Value> = Default::default();
    for (name, fs) in schema["fields"].as_object().into_iter().flatten() {
        if fs["type"] != "children" {
            continue;
        }
        let child_fields = fs["lines"]["fields"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (i, line) in record[name].as_array().into_iter().flatten().enumerate() {
            for (c, cfs) in &child_fields {
                let (Some(id), Some(target)) = (line[c].as_str(), cfs["target"]["object"].as_str())
                else {
                    continue;
                };
                if cfs["type"] != "reference" {
                    continue;
                }
                let tf = cfs["target"]["title_field"].as_str().unwrap_or("id");
                let key = (target.to_string(), id.to_string());
                if !cache.contains_key(&key) {
                    let r = web
                        .get(
                            s,
                            &format!(
                                "/api/v1/objects/{}/records/{}?fields={}",
                                encode(target),
                                encode(id),
                                encode(tf)
                            ),
                        )
                        .await;
                    cache.insert(
                        key.clone(),
                        if r.ok() {
                            r.body[tf].clone()
                        } else {
                            Value::Null
                        },
                    );
                }
                titles.insert(format!("{name}[{i}].{c}"), cache[&key].clone());
            }
        }
    }
    titles
}

/// Reads a record with its references expanded, for the form.
async fn read_record(web: &Web, s: &Session, schema: &Value, object: &str, id: &str) -> Reply {
    let names: Vec<String> = schema["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let expand = expandable(web, s, schema, &names);
    let mut uri = format!("/api/v1/objects/{}/records/{}", encode(object), encode(id));
    if !expand.is_empty() {
        uri.push_str(&format!("?expand={}", encode(&expand.join(","))));
    }
    web.get(s, &uri).await
}

#[derive(serde::Deserialize, Default)]
struct FormQuery {
    saved: Option<String>,
}

async fn new_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(object): Path<String>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let schema = match form_schema(&web, &s, &object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = web.chrome(&s, Some(&object));
    // A fresh Idempotency-Key per form, so a double submit creates one record.
    let opts = FormOptions {
        idempotency_key: Some(Uuid::new_v4().to_string()),
        ..Default::default()
    };
    web.render(
        StatusCode::OK,
        web.pages.form_page(&chrome, &schema, &json!({}), &opts),
    )
}

async fn create(State(web): W, Path(object): Path<String>, req: Request) -> Response {
    let (s, pairs, request_id) = match posted(&web, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let schema = match form_schema(&web, &s, &object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let input = form_to_json(&schema, &pairs, false);
    let idem = field(&pairs, "_idem").to_string();
    let mut headers = vec![("x-request-id", request_id)];
    if !idem.is_empty() {
        headers.push(("idempotency-key", idem.clone()));
    }
    let r = web
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/objects/{}/records", encode(&object)),
            Some(&input.body),
            &headers,
        )
        .await;
    if r.ok() {
        let id = r.body["id"].as_str().unwrap_or("");
        return see_other(&format!("/app/o/{object}/{id}?saved=created"));
    }
    let (errors, alert) = problems(&r);
    // The key is kept: nothing was stored under it, and the corrected form may use it.
    let opts = FormOptions {
        errors,
        alert,
        titles: input.titles,
        idempotency_key: Some(if idem.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            idem
        }),
        ..Default::default()
    };
    let chrome = web.chrome(&s, Some(&object));
    web.render(
        status_of(&r),
        web.pages.form_page(&chrome, &schema, &input.body, &opts),
    )
}

/// A refused write as field errors (422) or one message for the whole form.
fn problems(r: &Reply) -> (Vec<FieldError>, Option<String>) {
    match r.status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST if !r.issues().is_empty() => {
            (r.issues(), None)
        }
        StatusCode::CONFLICT => (
            Vec::new(),
            Some(format!(
                "{} Your changes are below and were not saved; reload the record to see the current values.",
                r.message()
            )),
        ),
        _ => (Vec::new(), Some(r.message())),
    }
}

fn status_of(r: &Reply) -> StatusCode {
    if r.status.is_server_error() {
        r.status
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

async fn edit_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<FormQuery>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let flash = match q.saved.as_deref() {
        None => None,
        Some("created") => Some(Flash::Text(
            "Created. Computed values are shown below.".into(),
        )),
        Some("1") => Some(Flash::Text("Saved.".into())),
        Some(action) => Some(Flash::Action(action.to_string())),
    };
    show_record(&web, &s, &object, &id, StatusCode::OK, flash, None).await
}

/// A success message on a record's page.
enum Flash {
    Text(String),
    /// A lifecycle action was taken; named by its label.
    Action(String),
}

async fn show_record(
    web: &Web,
    s: &Session,
    object: &str,
    id: &str,
    status: StatusCode,
    flash: Option<Flash>,
    alert: Option<String>,
) -> Response {
    let schema = match form_schema(web, s, object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let r = read_record(web, s, &schema, object, id).await;
    if !r.ok() {
        return web.api_error(s, &r);
    }
    let titles = line_titles(web, s, &schema, &r.body).await;
    let flash = flash.map(|f| match f {
        Flash::Action(name) => {
            let label = schema["lifecycle"]["transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["name"] == name.as_str())
                .and_then(|t| t["label"].as_str())
                .unwrap_or(&name)
                .to_string();
            format!("{label}: done.")
        }
        Flash::Text(t) => t,
    });
    let opts = FormOptions {
        id: Some(id.to_string()),
        titles,
        flash,
        alert,
        ..Default::default()
    };
    let chrome = web.chrome(s, Some(object));
    web.render(
        status,
        web.pages.form_page(&chrome, &schema, &r.body, &opts),
    )
}

async fn update(
    State(web): W,
    Path((object, id)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (s, pairs, request_id) = match posted(&web, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let schema = match form_schema(&web, &s, &object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let input = form_to_json(&schema, &pairs, true);
    let mut headers = vec![("x-request-id", request_id)];
    if let Some(v) = input.version {
        headers.push(("if-match", format!("\"{v}\"")));
    }
    let path = format!(
        "/api/v1/objects/{}/records/{}",
        encode(&object),
        encode(&id)
    );
    let r = web
        .call(&s, Method::PATCH, &path, Some(&input.body), &headers)
        .await;
    if r.ok() {
        return see_other(&format!("/app/o/{object}/{id}?saved=1"));
    }
    if r.status == StatusCode::NOT_FOUND || r.status == StatusCode::FORBIDDEN {
        return web.api_error(&s, &r);
    }
    // Show what was submitted over the stored record (its computed values and system
    // fields), at the version the form was based on.
    let current = read_record(&web, &s, &schema, &object, &id).await;
    let mut shown = current.body.as_object().cloned().unwrap_or_default();
    for (k, v) in input.body.as_object().into_iter().flatten() {
        shown.insert(k.clone(), v.clone());
    }
    if let Some(v) = input.version {
        shown.insert("version".into(), json!(v));
    }
    let (errors, alert) = problems(&r);
    let opts = FormOptions {
        id: Some(id.clone()),
        errors,
        alert,
        titles: input.titles,
        ..Default::default()
    };
    let chrome = web.chrome(&s, Some(&object));
    web.render(
        status_of(&r),
        web.pages
            .form_page(&chrome, &schema, &Value::Object(shown), &opts),
    )
}

async fn delete(
    State(web): W,
    Path((object, id)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (s, pairs, request_id) = match posted(&web, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let headers = api_headers(request_id, field(&pairs, "_version"));
    let path = format!(
        "/api/v1/objects/{}/records/{}",
        encode(&object),
        encode(&id)
    );
    let r = web.call(&s, Method::DELETE, &path, None, &headers).await;
    if r.ok() {
        return see_other(&format!("/app/o/{object}?deleted=1"));
    }
    let msg = r.message();
    show_record(
        &web,
        &s,
        &object,
        &id,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        Some(format!("Not deleted: {msg}")),
    )
    .await
}

/// A lifecycle action (send, accept, ...), through the API's transition endpoint.
async fn transition(
    State(web): W,
    Path((object, id, name)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let (s, pairs, request_id) = match posted(&web, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let headers = api_headers(request_id, field(&pairs, "_version"));
    let path = format!(
        "/api/v1/objects/{}/records/{}/transitions/{}",
        encode(&object),
        encode(&id),
        encode(&name)
    );
    let r = web
        .call(&s, Method::POST, &path, Some(&json!({})), &headers)
        .await;
    if r.ok() {
        return see_other(&format!("/app/o/{object}/{id}?saved={}", encode(&name)));
    }
    let detail: Vec<String> = r.issues().into_iter().map(|i| i.message).collect();
    let msg = if detail.is_empty() {
        r.message()
    } else {
        format!("{} {}", r.message(), detail.join("; "))
    };
    show_record(
        &web,
        &s,
        &object,
        &id,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
        Some(format!("The action was refused: {msg}")),
    )
    .await
}

async fn history_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let schema = match form_schema(&web, &s, &object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rec = read_record(&web, &s, &schema, &object, &id).await;
    // A deleted record still has its history.
    let record = if rec.ok() {
        rec.body
    } else {
        json!({"id": id})
    };
    let h = web
        .get(
            &s,
            &format!(
                "/api/v1/objects/{}/records/{}/history?limit=100",
                encode(&object),
                encode(&id)
            ),
        )
        .await;
    if !h.ok() {
        return web.api_error(&s, &h);
    }
    let chrome = web.chrome(&s, Some(&object));
    web.render(
        StatusCode::OK,
        web.pages.history_page(&chrome, &schema, &record, &h.body),
    )
}

#[derive(serde::Deserialize, Default)]
struct AdminQuery {
    added: Option<String>,
}

async fn admin_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Path(object): Path<String>,
    Query(q): Query<AdminQuery>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let flash = q
        .added
        .map(|n| format!("The field {n} was added. It is on the form and in the list now."));
    admin_render(
        &web,
        &s,
        &object,
        &json!({"type": "text"}),
        &[],
        flash.as_deref(),
        StatusCode::OK,
    )
    .await
}

async fn admin_render(
    web: &Web,
    s: &Session,
    object: &str,
    submitted: &Value,
    errors: &[FieldError],
    flash: Option<&str>,
    status: StatusCode,
) -> Response {
    let chrome = web.chrome(s, Some(object));
    if !chrome.can_admin {
        return web.error(
            Some(s),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Managing custom fields needs the role admin or tenant_admin.",
        );
    }
    let schema = match form_schema(web, s, object).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    web.render(
        status,
        web.pages
            .admin_fields_page(&chrome, &schema, submitted, errors, flash),
    )
}

/// `cf_` and the label in lower case with underscores: "PO number" -> `cf_po_number`.
fn field_name_from(label: &str) -> String {
    let mut out = String::from("cf_");
    let mut last_us = true;
    for c in label.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            last_us = false;
        } else if !last_us {
            out.push('_');
            last_us = true;
        }
    }
    out.trim_end_matches('_').to_string()
}

async fn admin_add(State(web): W, Path(object): Path<String>, req: Request) -> Response {
    let (s, pairs, request_id) = match posted(&web, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let label = field(&pairs, "label").trim().to_string();
    let mut name = field(&pairs, "name").trim().to_lowercase();
    let kind = field(&pairs, "type").to_string();
    let options_raw = field(&pairs, "options").trim().to_string();
    let help = field(&pairs, "help").trim().to_string();
    let required = field(&pairs, "required") == "true";
    let submitted = json!({"label": label, "name": name, "type": kind, "options": options_raw, "help": help, "required": required});
    let mut errors = Vec::new();
    if label.is_empty() {
        errors.push(FieldError {
            field: "label".into(),
            message: "Give the field a label.".into(),
        });
    }
    if name.is_empty() {
        name = field_name_from(&label);
    } else if !name.starts_with("cf_") {
        name = format!("cf_{name}");
    }
    let options: Vec<String> = options_raw
        .split(',')
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if kind == "picklist" && options.is_empty() {
        errors.push(FieldError {
            field: "options".into(),
            message: "A picklist needs at least one option.".into(),
        });
    }
    if !errors.is_empty() {
        return admin_render(
            &web,
            &s,
            &object,
            &submitted,
            &errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let mut body = json!({"name": name, "type": kind, "label": label, "required": required});
    if !help.is_empty() {
        body["help"] = json!(help);
    }
    if kind == "picklist" {
        body["options"] = json!(options);
    }
    let r = web
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/metadata/tenant/objects/{}/fields", encode(&object)),
            Some(&body),
            &[("x-request-id", request_id)],
        )
        .await;
    if r.ok() {
        return see_other(&with_query(
            &format!("/app/admin/fields/{object}"),
            &[("added", &name)],
        ));
    }
    let mut errors = r.issues();
    if errors.is_empty() {
        errors.push(FieldError {
            field: String::new(),
            message: r.message(),
        });
    }
    admin_render(&web, &s, &object, &submitted, &errors, None, status_of(&r)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_field_names_come_from_labels() {
        assert_eq!(field_name_from("PO number"), "cf_po_number");
        assert_eq!(field_name_from("  Région / zone "), "cf_r_gion_zone");
    }

    #[test]
    fn only_local_app_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/app/o/offer"), "/app/o/offer");
        assert_eq!(safe_next("https://evil.example"), "/app");
        assert_eq!(safe_next("//evil.example"), "/app");
    }

    #[test]
    fn a_post_from_another_site_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3010"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3010"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
    }
}

// ---------------------------------------------------------------------------------
// Users of the tenant (administrators)

/// The roles an administrator may give: every role an object's permissions name, plus
/// the administrators' own.
fn known_roles(web: &Web) -> Vec<String> {
    let meta = web.app.meta();
    let mut roles: std::collections::BTreeSet<String> = meta
        .catalog
        .objects()
        .flat_map(|o| o.def.permissions.keys().cloned())
        .collect();
    for r in ADMIN_ROLES {
        roles.insert(r.to_string());
    }
    roles.into_iter().collect()
}

#[derive(serde::Deserialize, Default)]
struct UsersQuery {
    added: Option<String>,
}

async fn users_page(
    State(web): W,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<UsersQuery>,
) -> Response {
    let s = match require(&web, &headers, &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let flash = q
        .added
        .map(|u| format!("The user {u} was added and can sign in now."));
    users_render(&web, &s, &json!({}), &[], flash.as_deref(), StatusCode::OK).await
}

async fn users_render(
    web: &Web,
    s: &Session,
    submitted: &Value,
    errors: &[FieldError],
    flash: Option<&str>,
    status: StatusCode,
) -> Response {
    let chrome = web.chrome(s, None);
    if !chrome.can_admin {
        return web.error(
            Some(s),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Managing users needs the role admin or tenant_admin.",
        );
    }
    type Row = (
        String,
        String,
        Vec<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let rows: Vec<Row> = match sqlx::query_as(
        "SELECT username, display_name, roles, last_login_at FROM engine.web_users WHERE tenant_id = $1 ORDER BY display_name, username",
    )
    .bind(s.principal.tenant)
    .fetch_all(&web.app.db.admin)
    .await
    {
        Ok(r) => r,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let users: Vec<Value> = rows
        .into_iter()
        .map(|(u, d, r, l)| {
            json!({"username": u, "display_name": d, "roles": r,
                   "last_login": l.map(|t| platform_web_renderer::view::short_datetime(&platform_metadata::values::format_datetime(t)))})
        })
        .collect();
    let roles = known_roles(web);
    web.render(
        status,
        web.pages
            .admin_users_page(&chrome, &users, &roles, submitted, errors, flash),
    )
}

async fn users_add(State(web): W, req: Request) -> Response {
    let uri = req.uri().clone();
    let s = match require(&web, req.headers(), &uri).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pairs = match form_post(&web, Some(&s), req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !s
        .principal
        .roles
        .iter()
        .any(|r| ADMIN_ROLES.contains(&r.as_str()))
    {
        return web.error(
            Some(&s),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Managing users needs the role admin or tenant_admin.",
        );
    }
    let username = field(&pairs, "username").trim().to_lowercase();
    let display = field(&pairs, "display_name").trim().to_string();
    let password = field(&pairs, "password").to_string();
    let known = known_roles(&web);
    let roles: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "roles" && known.contains(v))
        .map(|(_, v)| v.clone())
        .collect();
    let submitted = json!({"username": username, "display_name": display, "roles": roles});
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    let name_ok = !username.is_empty()
        && username.len() <= 100
        && username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
    if !name_ok {
        bad(
            "username",
            "Use 1 to 100 lower-case letters, digits and . _ - @.",
        );
    }
    if display.is_empty() {
        bad("display_name", "Give the user's name.");
    }
    if password.chars().count() < 8 {
        bad("password", "Use at least 8 characters.");
    }
    if roles.is_empty() {
        bad("roles", "Choose at least one role.");
    }
    if errors.is_empty() {
        let hash = match tokio::task::spawn_blocking(move || hash_password(&password)).await {
            Ok(Ok(h)) => h,
            _ => {
                return web.error(
                    Some(&s),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The password could not be stored.",
                )
            }
        };
        // A user name taken in any tenant is refused, never moved to this one.
        let inserted = sqlx::query(
            "INSERT INTO engine.web_users (username, tenant_id, display_name, password_hash, roles)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&username)
        .bind(s.principal.tenant)
        .bind(&display)
        .bind(hash)
        .bind(&roles)
        .execute(&web.app.db.admin)
        .await;
        match inserted {
            Ok(r) if r.rows_affected() == 1 => {
                tracing::info!(user = %username, by = %s.principal.user, tenant = %s.principal.tenant, "web user added");
                return see_other(&with_query("/app/admin/users", &[("added", &username)]));
            }
            Ok(_) => errors.push(FieldError {
                field: "username".into(),
                message: "This user name is taken.".into(),
            }),
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    }
    users_render(
        &web,
        &s,
        &submitted,
        &errors,
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

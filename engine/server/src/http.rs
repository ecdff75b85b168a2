//! The HTTP edge: the router, the JSON body extractor and the record handlers. Handlers
//! resolve the object, authorise, run the write pipeline and call the store in one
//! tenant transaction that also writes the audit event and the outbox envelope.

use crate::app::App;
use crate::auth::Principal;
use crate::db::tenant_tx;
use crate::error::{ApiError, ApiResult};
use crate::query::ListQuery;
use crate::records::{self, WriteCtx};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use platform_metadata::validate::{prepare, PrepareError, WriteMode};
use platform_metadata::{Action, FieldType, Issue, Object, Record};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use uuid::Uuid;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/objects/{object}/records", get(list).post(create))
        .route(
            "/objects/{object}/records/{id}",
            get(read).patch(patch).put(put).delete(remove),
        )
        .route("/objects/{object}/records/{id}/history", get(history))
        .route(
            "/objects/{object}/records/{id}/transitions/{name}",
            axum::routing::post(transition),
        )
        .route("/objects/{object}/form-schema", get(form_schema))
        .route("/objects/{object}/list-schema", get(list_schema))
        .route("/openapi.json", get(openapi))
        .merge(crate::metadata_api::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::events::routes());
    let swagger: Router<Arc<App>> = utoipa_swagger_ui::SwaggerUi::new("/api/docs")
        .config(utoipa_swagger_ui::Config::from("/api/v1/openapi.json"))
        .into();
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .nest("/api/v1", api)
        .merge(swagger)
        .merge(crate::web::routes(app.clone()))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
        })
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(app)
}

/// Query parameters whose rejection is a structured 400.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// A JSON request body: 415 unless the content type is JSON, 413 when larger than
/// [`MAX_BODY`], 400 when it does not parse.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be application/json, not `{ct}`"),
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    let db_ok = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&app.db.app),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let meta = app.meta();
    let body = json!({"status": if db_ok { "ready" } else { "unavailable" }, "database": db_ok, "metadata_version": meta.version});
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The OpenAPI document. Without a token: the shared objects (cached per version).
/// With a valid token: as the caller's tenant sees them, custom fields included.
async fn openapi(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let meta = app.meta();
    let principal = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| app.jwt.verify(t.trim()).ok());
    let custom = principal
        .as_ref()
        .map(|p| app.tenant_fields_of(p.tenant))
        .unwrap_or_default();
    if let (Some(p), false) = (principal, custom.is_empty()) {
        let overlay: std::collections::HashMap<String, Arc<Object>> = custom
            .keys()
            .filter_map(|name| {
                app.object_for(&meta, p.tenant, name)
                    .map(|o| (name.clone(), o))
            })
            .collect();
        return Json(crate::openapi::build(&meta.catalog, meta.version, &overlay)).into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        meta.openapi().to_string(),
    )
        .into_response()
}

/// A top-level object the caller may `action`, as the caller's tenant sees it (with its
/// custom fields): 404 for unknown and line objects.
fn resolve(
    app: &App,
    meta: &crate::app::Loaded,
    name: &str,
    p: &Principal,
    action: Action,
) -> ApiResult<Arc<Object>> {
    let obj = app
        .object_for(meta, p.tenant, name)
        .filter(|o| !o.def.child)
        .ok_or_else(|| ApiError::not_found(format!("no object named `{name}`")))?;
    if !obj.allows(&p.roles, action) {
        return Err(ApiError::forbidden(format!(
            "your roles may not {} {} records",
            action.as_str(),
            name
        )));
    }
    Ok(obj)
}

/// A record's audit events, newest first, paged with `limit` and `cursor`. Works for
/// deleted records too.
async fn history(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id)): Path<(String, String)>,
    Q(pairs): Q<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Read)?;
    let id = parse_id(&id)?;
    let mut limit = 50i64;
    let mut cursor: Option<(chrono::DateTime<chrono::Utc>, Uuid)> = None;
    for (k, v) in &pairs {
        let bad =
            |m: &str| {
                ApiError::bad_request("invalid_query", m.to_string())
                    .with_details(vec![Issue::new(k.clone(), "query", m, json!(v))])
            };
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| bad("must be an integer from 1 to 200"))?
            }
            "cursor" => {
                let (t, i) = v
                    .split_once('_')
                    .ok_or_else(|| bad("not a cursor of this history"))?;
                let t = chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| bad("not a cursor of this history"))?
                    .with_timezone(&chrono::Utc);
                cursor = Some((
                    t,
                    Uuid::parse_str(i).map_err(|_| bad("not a cursor of this history"))?,
                ));
            }
            _ => return Err(bad("unknown query parameter (use limit, cursor)")),
        }
    }
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    type Row = (
        Uuid,
        String,
        i64,
        String,
        Vec<String>,
        Option<String>,
        Option<String>,
        i64,
        Value,
        chrono::DateTime<chrono::Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, action, record_version, actor, roles, request_id, correlation_id, metadata_version, changes, occurred_at
         FROM engine.audit_events
         WHERE tenant_id = $1 AND object = $2 AND record_id = $3 AND ($4::timestamptz IS NULL OR (occurred_at, id) < ($4, $5))
         ORDER BY occurred_at DESC, id DESC LIMIT $6",
    )
    .bind(p.tenant)
    .bind(obj.name())
    .bind(id)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let has_more = rows.len() as i64 > limit;
    let data: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|(eid, action, version, actor, roles, req, corr, mv, changes, at)| {
            json!({"id": eid, "action": action, "record_version": version, "actor": {"user": actor, "roles": roles},
                   "request_id": req, "correlation_id": corr, "metadata_version": mv, "changes": changes,
                   "occurred_at": platform_metadata::values::format_datetime(*at)})
        })
        .collect();
    let next = if has_more {
        rows.get(limit as usize - 1).map(|r| {
            format!(
                "{}_{}",
                platform_metadata::values::format_datetime(r.9),
                r.0
            )
        })
    } else {
        None
    };
    Ok(Json(
        json!({"data": data, "next_cursor": next, "has_more": has_more, "limit": limit}),
    ))
}

/// What a front end needs to render the object's form for the caller.
async fn form_schema(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
) -> ApiResult<Json<Value>> {
    render_schema(&app, &p, &object, platform_metadata::form::form_schema)
}

/// What a front end needs to render the object's list for the caller.
async fn list_schema(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
) -> ApiResult<Json<Value>> {
    render_schema(&app, &p, &object, platform_metadata::form::list_schema)
}

fn render_schema(
    app: &App,
    p: &Principal,
    object: &str,
    make: fn(&platform_metadata::Catalog, &Object, &[String]) -> Value,
) -> ApiResult<Json<Value>> {
    let meta = app.meta();
    let obj = &resolve(app, &meta, object, p, Action::Read)?;
    let mut v = make(&meta.catalog, obj, &p.roles);
    v["metadata_version"] = json!(meta.version);
    Ok(Json(v))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("no record with id `{id}`")))
}

fn ctx<'a>(app: &'a App, p: &'a Principal, headers: &HeaderMap, version: i64) -> WriteCtx<'a> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let request_id = h("x-request-id").unwrap_or_default();
    WriteCtx {
        principal: p,
        numbers: &app.numbers,
        correlation_id: h("x-correlation-id").unwrap_or_else(|| request_id.clone()),
        request_id,
        metadata_version: version,
    }
}

fn prepare_error(e: PrepareError) -> ApiError {
    match e {
        PrepareError::Invalid(issues) => ApiError::validation(issues),
        PrepareError::Plugin(m) => ApiError::internal(format!("plugin failed: {m}")),
    }
}

fn etag(version: &Value) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", version.as_i64().unwrap_or_default()))
        .unwrap_or(HeaderValue::from_static("\"0\""))
}

fn record_response(status: StatusCode, rec: Record, location: Option<String>) -> Response {
    let mut resp = (status, Json(Value::Object(rec.clone()))).into_response();
    if let Some(v) = rec.get("version") {
        resp.headers_mut().insert(header::ETAG, etag(v));
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

/// The version the client based its change on: If-Match, or `version` in the body or
/// the query. None when it gave none.
fn expected_version(headers: &HeaderMap, other: Option<&Value>) -> ApiResult<Option<i64>> {
    let from_header = match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(s) => {
            let t = s.trim().trim_start_matches("W/").trim_matches('"');
            Some(t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_if_match",
                    format!(
                        "If-Match must be the record's version in quotes, like \"3\"; got `{s}`"
                    ),
                )
            })?)
        }
    };
    let from_other = match other {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    ApiError::validation(vec![Issue::new(
                        "version",
                        "type",
                        "must be the integer version of the record",
                        v.clone(),
                    )])
                })?,
        ),
    };
    match (from_header, from_other) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "version_mismatch",
            "If-Match and version disagree",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn check_version(expected: Option<i64>, current: &Record) -> ApiResult<()> {
    let cur = current
        .get("version")
        .and_then(|v| v.as_i64())
        .unwrap_or_default();
    match expected {
        Some(e) if e != cur => Err(ApiError::conflict(
            "version_conflict",
            format!("the record is at version {cur}, not {e}: it changed since you read it; read it again and retry"),
        )
        .with_details(vec![Issue::new("version", "version", format!("current version is {cur}"), json!(e))])),
        _ => Ok(()),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Create)?;
    let request_hash = hex::encode(Sha256::digest(format!(
        "{object}\n{}",
        canonical_json(&body)
    )));
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 255 => Some(s.to_string()),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                ))
            }
        },
    };
    let id = match body.as_object_mut().and_then(|m| m.shift_remove("id")) {
        None | Some(Value::Null) => Uuid::now_v7(),
        Some(v) => v
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| {
                ApiError::validation(vec![Issue::new(
                    "id",
                    "format",
                    "must be a UUID",
                    v.clone(),
                )])
            })?,
    };
    if let (Some(lc), Some(initial)) = (&obj.def.lifecycle, obj.initial_state()) {
        let given = body.get(&lc.field).filter(|v| !v.is_null());
        if given.is_some_and(|v| v.as_str() != Some(initial))
            && !p.roles.iter().any(|r| r == "admin")
        {
            return Err(ApiError::validation(vec![Issue::new(
                lc.field.clone(),
                "lifecycle",
                format!(
                    "a new {object} starts as `{initial}`; it moves on through its transitions"
                ),
                given.cloned().unwrap_or_default(),
            )]));
        }
    }
    let wctx = ctx(&app, &p, &headers, meta.version);
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    if let Some(key) = &key {
        let fresh = sqlx::query("INSERT INTO engine.idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(p.tenant)
            .bind(key)
            .bind(&request_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !fresh {
            let (hash, status, response): (String, Option<i16>, Option<Value>) =
                sqlx::query_as("SELECT request_hash, status, response FROM engine.idempotency_keys WHERE tenant_id = $1 AND key = $2")
                    .bind(p.tenant)
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            if hash != request_hash {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request body; use a new key for a new request",
                ));
            }
            let status =
                StatusCode::from_u16(status.unwrap_or(201) as u16).unwrap_or(StatusCode::CREATED);
            let rec = response
                .and_then(|r| r.as_object().cloned())
                .unwrap_or_default();
            let loc = rec
                .get("id")
                .and_then(|v| v.as_str())
                .map(|i| format!("/api/v1/objects/{object}/records/{i}"));
            let mut resp = record_response(status, rec, loc);
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(resp);
        }
    }
    let stored = create_in_tx(&mut tx, &meta, obj, id, &body, &wctx).await?;
    if let Some(key) = &key {
        sqlx::query("UPDATE engine.idempotency_keys SET status = 201, response = $3 WHERE tenant_id = $1 AND key = $2")
            .bind(p.tenant)
            .bind(key)
            .bind(sqlx::types::Json(&stored))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    app.events.wake();
    let loc = format!("/api/v1/objects/{object}/records/{id}");
    Ok(record_response(StatusCode::CREATED, stored, Some(loc)))
}

/// Validates and inserts a new record with its audit event and envelope, in `conn`'s
/// transaction. Used by POST and by the demo data.
pub async fn create_in_tx(
    conn: &mut sqlx::PgConnection,
    meta: &crate::app::Loaded,
    obj: &Object,
    id: Uuid,
    body: &Value,
    wctx: &WriteCtx<'_>,
) -> ApiResult<Record> {
    let rec = prepare(&meta.catalog, obj, body, WriteMode::Create, None).map_err(prepare_error)?;
    let stored = records::insert(conn, &meta.catalog, obj, id, rec, wctx).await?;
    records::record_event(
        conn,
        obj,
        id,
        "created",
        1,
        records::diff(None, Some(&stored)),
        &stored,
        wctx,
    )
    .await?;
    Ok(stored)
}

/// JSON with object keys sorted, so two bodies that differ only in key order hash alike.
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical_json(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// `fields` and `expand` of a single-record read.
fn read_params(obj: &Object, pairs: &[(String, String)]) -> ApiResult<ListQuery> {
    let allowed: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "fields" || k == "expand")
        .cloned()
        .collect();
    if let Some((k, v)) = pairs.iter().find(|(k, _)| k != "fields" && k != "expand") {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter `{k}`"),
        )
        .with_details(vec![Issue::new(
            k.clone(),
            "query",
            "only fields and expand apply to one record",
            json!(v),
        )]));
    }
    ListQuery::parse(obj, &allowed)
}

async fn read(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id)): Path<(String, String)>,
    Q(pairs): Q<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Read)?;
    let id = parse_id(&id)?;
    let q = read_params(obj, &pairs)?;
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let rec = records::fetch(&mut tx, &meta.catalog, obj, p.tenant, id, false)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {object} with id {id}")))?;
    let mut recs = vec![rec];
    expand(&app, &mut tx, &meta, obj, &p, &q, &mut recs).await?;
    tx.commit().await?;
    let rec = select_fields(&q, recs.pop().unwrap_or_default());
    Ok(record_response(StatusCode::OK, rec, None))
}

/// Replaces expanded reference ids with the referenced records.
async fn expand(
    app: &App,
    conn: &mut sqlx::PgConnection,
    meta: &crate::app::Loaded,
    obj: &Object,
    p: &Principal,
    q: &ListQuery,
    recs: &mut [Record],
) -> ApiResult<()> {
    for name in &q.expand {
        let Some(f) = obj.field(name) else { continue };
        if f.kind != FieldType::Reference {
            continue;
        }
        let target_name = f.target.clone().unwrap_or_default();
        let target = &resolve(app, meta, &target_name, p, Action::Read)?;
        let ids: Vec<Uuid> = recs
            .iter()
            .filter_map(|r| r.get(name)?.as_str()?.parse().ok())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND id = ANY($2)",
            records::select_list(target),
            crate::ddl::table(&target.def)
        );
        let rows = sqlx::query(&sql)
            .bind(p.tenant)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let mut by_id = std::collections::HashMap::new();
        for row in &rows {
            let r = records::row_to_record(target, row)?;
            if let Some(id) = r.get("id").and_then(|v| v.as_str()).map(String::from) {
                by_id.insert(id, r);
            }
        }
        for r in recs.iter_mut() {
            let key = r.get(name).and_then(|v| v.as_str()).map(String::from);
            if let Some(found) = key.and_then(|k| by_id.get(&k)) {
                r.insert(name.clone(), Value::Object(found.clone()));
            }
        }
    }
    Ok(())
}

fn select_fields(q: &ListQuery, rec: Record) -> Record {
    match &q.fields {
        None => rec,
        Some(fields) => rec
            .into_iter()
            .filter(|(k, _)| k == "id" || k == "version" || fields.contains(k))
            .collect(),
    }
}

async fn list(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    Q(pairs): Q<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Read)?;
    let q = ListQuery::parse(obj, &pairs)?;
    let sql = q.sql(obj);
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let mut query = sqlx::query(&sql).bind(p.tenant);
    for b in q.binds.iter().cloned() {
        query = crate::sqlvalue::bind(query, b);
    }
    let rows = query.fetch_all(&mut *tx).await?;
    let has_more = rows.len() as i64 > q.limit;
    let mut recs = rows
        .iter()
        .take(q.limit as usize)
        .map(|r| records::row_to_record(obj, r))
        .collect::<ApiResult<Vec<_>>>()?;
    // The cursor holds the sort values as stored, before references are expanded.
    let next = if has_more {
        recs.last().map(|r| q.next_cursor(r))
    } else {
        None
    };
    let children: Vec<String> = q
        .expand
        .iter()
        .filter(|n| obj.field(n).is_some_and(|f| f.kind == FieldType::Children))
        .cloned()
        .collect();
    if !children.is_empty() {
        records::attach_children(
            &mut tx,
            &meta.catalog,
            obj,
            p.tenant,
            &mut recs,
            Some(&children),
        )
        .await?;
    }
    expand(&app, &mut tx, &meta, obj, &p, &q, &mut recs).await?;
    tx.commit().await?;
    let data: Vec<Value> = recs
        .into_iter()
        .map(|r| Value::Object(select_fields(&q, r)))
        .collect();
    Ok(Json(
        json!({"data": data, "next_cursor": next, "has_more": has_more, "limit": q.limit}),
    ))
}

async fn update(
    app: Arc<App>,
    p: Principal,
    object: String,
    id: String,
    headers: HeaderMap,
    mut body: Value,
    mode: WriteMode,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Update)?;
    let id = parse_id(&id)?;
    let body_version = body.as_object_mut().and_then(|m| m.shift_remove("version"));
    let expected = expected_version(&headers, body_version.as_ref())?;
    let wctx = ctx(&app, &p, &headers, meta.version);
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let existing = records::fetch(&mut tx, &meta.catalog, obj, p.tenant, id, true)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {object} with id {id}")))?;
    check_version(expected, &existing)?;
    if let Some(lc) = &obj.def.lifecycle {
        let current = existing.get(&lc.field).cloned().unwrap_or_default();
        if let Some(m) = body.as_object_mut() {
            match m.get(&lc.field) {
                Some(v) if *v != current => {
                    let names: Vec<&str> = lc.transitions.iter().map(|t| t.name.as_str()).collect();
                    return Err(ApiError::validation(vec![Issue::new(
                        lc.field.clone(),
                        "lifecycle",
                        format!(
                            "changes only through the transitions ({}): POST .../records/{id}/transitions/{{name}}",
                            names.join(", ")
                        ),
                        v.clone(),
                    )]));
                }
                // A full replacement keeps the state it does not mention.
                _ => {
                    m.insert(lc.field.clone(), current);
                }
            }
        }
    }
    let rec = prepare(&meta.catalog, obj, &body, mode, Some(&existing)).map_err(prepare_error)?;
    let changes = records::diff(Some(&existing), Some(&rec));
    if changes.as_object().is_some_and(|c| c.is_empty()) {
        tx.rollback().await?;
        return Ok(record_response(StatusCode::OK, existing, None));
    }
    let stored = update_in_tx(tx, &meta.catalog, obj, id, rec, &existing, "updated", &wctx).await?;
    app.events.wake();
    Ok(record_response(StatusCode::OK, stored, None))
}

/// Writes a validated change of a locked record with its audit event and envelope
/// (`action` names the event), and commits.
#[allow(clippy::too_many_arguments)]
async fn update_in_tx(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    catalog: &platform_metadata::Catalog,
    obj: &Object,
    id: Uuid,
    rec: Record,
    existing: &Record,
    action: &str,
    wctx: &WriteCtx<'_>,
) -> ApiResult<Record> {
    let stored = records::update(&mut tx, catalog, obj, id, rec, existing, wctx).await?;
    let version = stored
        .get("version")
        .and_then(|v| v.as_i64())
        .unwrap_or_default();
    records::record_event(
        &mut tx,
        obj,
        id,
        action,
        version,
        records::diff(Some(existing), Some(&stored)),
        &stored,
        wctx,
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// Moves a record along its lifecycle: checks the transition is allowed for the caller
/// and from the record's state, re-validates the record in its new state (rules such as
/// "a sent offer has lines" apply), and writes it with an audit event and the domain
/// event `<service>.<object>.<event>`.
async fn transition(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Read)?;
    let lc = obj
        .def
        .lifecycle
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("{object} has no lifecycle")))?;
    let t = lc
        .transitions
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = lc.transitions.iter().map(|t| t.name.as_str()).collect();
            ApiError::not_found(format!(
                "{object} has no transition `{name}` (it has: {})",
                names.join(", ")
            ))
        })?;
    if !obj.may_transition(&p.roles, t) {
        return Err(ApiError::forbidden(format!(
            "your roles may not {name} {object} records"
        )));
    }
    let id = parse_id(&id)?;
    let expected = expected_version(&headers, None)?;
    let wctx = ctx(&app, &p, &headers, meta.version);
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let existing = records::fetch(&mut tx, &meta.catalog, obj, p.tenant, id, true)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {object} with id {id}")))?;
    check_version(expected, &existing)?;
    let state = existing
        .get(&lc.field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if !t.from.contains(&state) {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "cannot {name} this {object}: it is `{state}` ({name} starts only from: {})",
                t.from.join(", ")
            ),
        ));
    }
    let body = json!({ lc.field.clone(): t.to });
    let rec = prepare(&meta.catalog, obj, &body, WriteMode::Patch, Some(&existing))
        .map_err(prepare_error)?;
    let stored = update_in_tx(tx, &meta.catalog, obj, id, rec, &existing, t.event(), &wctx).await?;
    app.events.wake();
    Ok(record_response(StatusCode::OK, stored, None))
}

async fn patch(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(app, p, object, id, headers, body, WriteMode::Patch).await
}

async fn put(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(app, p, object, id, headers, body, WriteMode::Replace).await
}

async fn remove(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, id)): Path<(String, String)>,
    Q(pairs): Q<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = &resolve(&app, &meta, &object, &p, Action::Delete)?;
    let id = parse_id(&id)?;
    let qv = pairs
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| Value::String(v.clone()));
    let expected = expected_version(&headers, qv.as_ref())?;
    let wctx = ctx(&app, &p, &headers, meta.version);
    let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
    let existing = records::fetch(&mut tx, &meta.catalog, obj, p.tenant, id, true)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {object} with id {id}")))?;
    check_version(expected, &existing)?;
    records::delete(&mut tx, obj, p.tenant, id).await?;
    let version = existing
        .get("version")
        .and_then(|v| v.as_i64())
        .unwrap_or_default();
    records::record_event(
        &mut tx,
        obj,
        id,
        "deleted",
        version,
        records::diff(Some(&existing), None),
        &existing,
        &wctx,
    )
    .await?;
    tx.commit().await?;
    app.events.wake();
    Ok(StatusCode::NO_CONTENT.into_response())
}

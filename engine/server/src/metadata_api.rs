//! The Metadata API: read the definitions and their versions; create objects, add and
//! change fields, reorder layouts, drop what needs dropping, roll back. Every change is
//! checked like a definition file, planned as DDL, checked against existing rows and
//! applied in one transaction as a new immutable version, then installed here and
//! announced to every other process.

use crate::app::{compile, App, Loaded};
use crate::auth::Principal;
use crate::ddl::Rename;
use crate::error::{ApiError, ApiResult};
use crate::evolve::{self, EvolveError, Options};
use crate::http::Q as Query;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use platform_metadata::check::parse_definition;
use platform_metadata::{DefinitionError, Issue, ObjectDef};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/metadata/schema", get(schema))
        .route("/metadata/objects", get(list_objects).post(create_object))
        .route(
            "/metadata/objects/{object}",
            get(get_object).put(replace_object).delete(delete_object),
        )
        .route("/metadata/objects/{object}/fields", post(add_field))
        .route(
            "/metadata/objects/{object}/fields/{field}",
            patch(change_field).delete(delete_field),
        )
        .route("/metadata/objects/{object}/layouts", put(put_layouts))
        .route("/metadata/versions", get(versions))
        .route("/metadata/versions/{version}", get(version))
        .route("/metadata/versions/{version}/rollback", post(rollback))
        .route("/metadata/diff", get(diff))
        .route("/metadata/export", get(export))
        .route("/metadata/tenant/fields", get(tenant_fields))
        .route(
            "/metadata/tenant/objects/{object}/fields",
            post(add_tenant_field),
        )
        .route(
            "/metadata/tenant/objects/{object}/fields/{field}",
            patch(change_tenant_field).delete(delete_tenant_field),
        )
}

/// Roles that may change shared metadata.
pub const METADATA_ADMIN_ROLES: &[&str] = &["admin", "metadata_admin"];

fn require_admin(p: &Principal) -> ApiResult<()> {
    if p.roles
        .iter()
        .any(|r| METADATA_ADMIN_ROLES.contains(&r.as_str()))
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "changing metadata needs the metadata-admin permission (role admin or metadata_admin)",
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeParams {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    allow_destructive: bool,
}

async fn schema(_p: Principal) -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        platform_metadata::check::OBJECT_SCHEMA,
    )
        .into_response()
}

async fn list_objects(State(app): State<Arc<App>>, _p: Principal) -> Json<Value> {
    let meta = app.meta();
    Json(json!({"version": meta.version, "objects": meta.catalog.defs()}))
}

async fn get_object(
    State(app): State<Arc<App>>,
    _p: Principal,
    Path(object): Path<String>,
) -> ApiResult<Response> {
    let meta = app.meta();
    let obj = meta
        .catalog
        .get(&object)
        .ok_or_else(|| ApiError::not_found(format!("no object named `{object}`")))?;
    let mut resp = Json(serde_json::to_value(&obj.def).unwrap_or_default()).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{}\"", meta.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn export(State(app): State<Arc<App>>, _p: Principal) -> Json<Value> {
    let meta = app.meta();
    let files: serde_json::Map<String, Value> = meta
        .catalog
        .defs()
        .into_iter()
        .map(|d| {
            (
                format!("objects/{}.json", d.name),
                serde_json::to_value(d).unwrap_or_default(),
            )
        })
        .collect();
    Json(json!({"version": meta.version, "files": files}))
}

fn definition_errors(errors: Vec<DefinitionError>) -> ApiError {
    let n = errors.len();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_definition",
        format!("{n} problem(s) with the definition"),
    )
    .with_details(
        errors
            .into_iter()
            .map(|e| Issue::new(e.path, e.code, e.message, json!(e.file)))
            .collect(),
    )
}

fn evolve_error(e: EvolveError) -> ApiError {
    match e {
        EvolveError::Stale { current, given } => ApiError::conflict(
            "metadata_version_conflict",
            format!("the metadata is at version {current}, not {given}: another change came first; read it again and retry"),
        ),
        EvolveError::Destructive(changes) => ApiError::conflict(
            "destructive_change",
            "this change drops data; repeat it with ?allow_destructive=true (dropped columns and tables are kept, renamed)",
        )
        .with_details(changes.into_iter().map(|c| Issue::new(c.object, "destructive", c.description, json!(c.sql))).collect()),
        EvolveError::Refused(msgs) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_change", msgs.join("; ")),
        EvolveError::Unsafe(vs) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsafe_change", "existing rows stop this change")
            .with_details(vs.into_iter().map(|v| Issue::new(v.field, v.rule, v.message, json!({"count": v.count, "samples": v.samples}))).collect()),
        EvolveError::Db(e) => {
            if let sqlx::Error::Database(d) = &e {
                if d.code().as_deref() == Some("55P03") {
                    return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "locked", "the table is busy (a long transaction holds it); retry shortly");
                }
            }
            ApiError::internal(e)
        }
        EvolveError::Stored(m) => ApiError::internal(m),
    }
}

/// The newest stored definitions, checked against the caller's If-Match.
async fn current(app: &App, headers: &HeaderMap) -> ApiResult<(i64, Vec<ObjectDef>)> {
    let (version, defs) = evolve::latest(&app.db.admin)
        .await
        .map_err(evolve_error)?
        .unwrap_or((0, Vec::new()));
    if let Some(v) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let given: i64 = v.trim().trim_matches('"').parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be the metadata version in quotes, like \"3\"",
            )
        })?;
        if given != version {
            return Err(evolve_error(EvolveError::Stale {
                current: version,
                given,
            }));
        }
    }
    Ok((version, defs))
}

/// Checks, plans and applies `defs` as a new version based on `base`.
#[allow(clippy::too_many_arguments)]
async fn change(
    app: &App,
    p: &Principal,
    base: i64,
    defs: Vec<ObjectDef>,
    renames: Vec<Rename>,
    params: &ChangeParams,
    source: &str,
    created: bool,
) -> ApiResult<Response> {
    let catalog = platform_metadata::Catalog::from_defs(defs, crate::app::plugins())
        .map_err(definition_errors)?;
    let opts = Options {
        source: source.into(),
        actor: format!("{} ({})", p.user, p.tenant),
        base_version: Some(base),
        allow_destructive: params.allow_destructive,
        dry_run: params.dry_run,
        renames,
        files: None,
    };
    let outcome = evolve::apply(&app.db.admin, &catalog, &opts)
        .await
        .map_err(evolve_error)?;
    if outcome.applied {
        app.install(Loaded::new(catalog, outcome.version).map_err(ApiError::internal)?);
    }
    let status = if created && outcome.applied {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "version": outcome.version,
        "previous_version": outcome.previous_version,
        "applied": outcome.applied,
        "dry_run": params.dry_run,
        "changes": outcome.changes.iter().map(|c| json!({"object": c.object, "description": c.description, "destructive": c.destructive})).collect::<Vec<_>>(),
        "ddl": outcome.ddl,
        "diff": outcome.diff,
    });
    Ok((status, Json(body)).into_response())
}

fn find<'a>(defs: &'a mut [ObjectDef], name: &str) -> ApiResult<&'a mut ObjectDef> {
    defs.iter_mut()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no object named `{name}`")))
}

async fn create_object(
    State(app): State<Arc<App>>,
    p: Principal,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
    crate::http::JsonBody(body): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let def = parse_definition("api", &body).map_err(definition_errors)?;
    let (base, mut defs) = current(&app, &headers).await?;
    if defs.iter().any(|d| d.name == def.name) {
        return Err(ApiError::conflict(
            "object_exists",
            format!("an object named `{}` exists; change it with PUT", def.name),
        ));
    }
    defs.push(def);
    change(&app, &p, base, defs, vec![], &params, "api", true).await
}

async fn replace_object(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
    crate::http::JsonBody(body): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let def = parse_definition("api", &body).map_err(definition_errors)?;
    if def.name != object {
        return Err(ApiError::bad_request(
            "name_mismatch",
            "the definition's name must match the path; objects cannot be renamed",
        ));
    }
    let (base, mut defs) = current(&app, &headers).await?;
    *find(&mut defs, &object)? = def;
    change(&app, &p, base, defs, vec![], &params, "api", false).await
}

async fn delete_object(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let (base, mut defs) = current(&app, &headers).await?;
    find(&mut defs, &object)?;
    defs.retain(|d| d.name != object);
    change(&app, &p, base, defs, vec![], &params, "api", false).await
}

/// Re-parses an object after an edit of its JSON, so a field is checked exactly as in a
/// definition file.
fn edit_object(
    def: &ObjectDef,
    edit: impl FnOnce(&mut Value) -> ApiResult<()>,
) -> ApiResult<ObjectDef> {
    let mut v = serde_json::to_value(def).map_err(ApiError::internal)?;
    edit(&mut v)?;
    parse_definition(&format!("api:{}", def.name), &v).map_err(definition_errors)
}

async fn add_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
    crate::http::JsonBody(field): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let (base, mut defs) = current(&app, &headers).await?;
    let def = find(&mut defs, &object)?;
    let name = field
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if def.fields.iter().any(|f| f.name == name) {
        return Err(ApiError::conflict(
            "field_exists",
            format!("`{object}` already has a field `{name}`"),
        ));
    }
    let new_def = edit_object(def, |v| {
        match v["fields"].as_array_mut() {
            Some(a) => a.push(field.clone()),
            None => return Err(ApiError::internal("a definition without fields")),
        }
        Ok(())
    })?;
    // New fields also go at the end of the form's last section, so they show at once.
    let mut new_def = new_def;
    if let Some(form) = new_def.layouts.form.as_mut() {
        if let Some(last) = form.sections.last_mut() {
            if !new_def
                .fields
                .iter()
                .any(|f| f.name == name && f.kind == platform_metadata::FieldType::Children)
            {
                last.fields.push(name.clone());
            }
        }
    }
    *def = new_def;
    change(&app, &p, base, defs, vec![], &params, "api", true).await
}

/// JSON merge patch (RFC 7396) of `patch` onto `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.shift_remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn change_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
    crate::http::JsonBody(changes): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_admin(&p)?;
    if !changes.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body is a JSON merge patch of the field's attributes",
        ));
    }
    let (base, mut defs) = current(&app, &headers).await?;
    let def = find(&mut defs, &object)?;
    let index = def
        .fields
        .iter()
        .position(|f| f.name == field)
        .ok_or_else(|| ApiError::not_found(format!("`{object}` has no field `{field}`")))?;
    let new_name = changes
        .get("name")
        .and_then(|v| v.as_str())
        .map(String::from);
    let mut new_def = edit_object(def, |v| {
        merge_patch(&mut v["fields"][index], &changes);
        Ok(())
    })?;
    let mut renames = Vec::new();
    if let Some(n) = new_name.filter(|n| *n != field) {
        // Layouts follow the rename.
        for sec in new_def
            .layouts
            .form
            .iter_mut()
            .flat_map(|f| f.sections.iter_mut())
        {
            for f in sec.fields.iter_mut().filter(|f| **f == field) {
                *f = n.clone();
            }
        }
        for c in new_def
            .layouts
            .list
            .iter_mut()
            .flat_map(|l| l.columns.iter_mut())
            .filter(|c| **c == field)
        {
            *c = n.clone();
        }
        renames.push(Rename {
            object: object.clone(),
            from: field.clone(),
            to: n,
        });
    }
    *def = new_def;
    change(&app, &p, base, defs, renames, &params, "api", false).await
}

async fn delete_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let (base, mut defs) = current(&app, &headers).await?;
    let def = find(&mut defs, &object)?;
    if !def.fields.iter().any(|f| f.name == field) {
        return Err(ApiError::not_found(format!(
            "`{object}` has no field `{field}`"
        )));
    }
    def.fields.retain(|f| f.name != field);
    for sec in def
        .layouts
        .form
        .iter_mut()
        .flat_map(|f| f.sections.iter_mut())
    {
        sec.fields.retain(|f| *f != field);
    }
    if let Some(list) = def.layouts.list.as_mut() {
        list.columns.retain(|c| *c != field);
    }
    change(&app, &p, base, defs, vec![], &params, "api", false).await
}

async fn put_layouts(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
    crate::http::JsonBody(layouts): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let (base, mut defs) = current(&app, &headers).await?;
    let def = find(&mut defs, &object)?;
    *def = edit_object(def, |v| {
        v["layouts"] = layouts.clone();
        Ok(())
    })?;
    change(&app, &p, base, defs, vec![], &params, "api", false).await
}

async fn versions(State(app): State<Arc<App>>, _p: Principal) -> ApiResult<Json<Value>> {
    type Row = (
        i64,
        String,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        Option<i64>,
        Value,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT version, hash, source, applied_by, applied_at, base_version, diff FROM engine.metadata_versions ORDER BY version DESC",
    )
    .fetch_all(&app.db.admin)
    .await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(version, hash, source, by, at, base, diff)| {
            json!({"version": version, "hash": hash, "source": source, "applied_by": by, "applied_at": at, "base_version": base,
                   "objects_added": diff["objects_added"], "objects_removed": diff["objects_removed"],
                   "objects_changed": diff["objects_changed"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())})
        })
        .collect();
    Ok(Json(json!({"current": app.meta().version, "data": data})))
}

async fn load_version(app: &App, v: i64) -> ApiResult<(Value, String, Value)> {
    let row: Option<(Value, String, Value)> = sqlx::query_as(
        "SELECT definitions, ddl, diff FROM engine.metadata_versions WHERE version = $1",
    )
    .bind(v)
    .fetch_optional(&app.db.admin)
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("no metadata version {v}")))
}

fn version_number(v: &str) -> ApiResult<i64> {
    v.parse()
        .map_err(|_| ApiError::not_found(format!("no metadata version `{v}`")))
}

async fn version(
    State(app): State<Arc<App>>,
    _p: Principal,
    Path(v): Path<String>,
) -> ApiResult<Json<Value>> {
    let v = version_number(&v)?;
    let (defs, ddl, diff) = load_version(&app, v).await?;
    Ok(Json(
        json!({"version": v, "definitions": defs, "ddl": ddl, "diff": diff}),
    ))
}

#[derive(Deserialize)]
struct DiffParams {
    from: i64,
    to: i64,
}

async fn diff(
    State(app): State<Arc<App>>,
    _p: Principal,
    Query(q): Query<DiffParams>,
) -> ApiResult<Json<Value>> {
    let parse = |v: Value| serde_json::from_value::<Vec<ObjectDef>>(v).map_err(ApiError::internal);
    let a = parse(load_version(&app, q.from).await?.0)?;
    let b = parse(load_version(&app, q.to).await?.0)?;
    Ok(Json(
        json!({"from": q.from, "to": q.to, "diff": evolve::diff_defs(&a, &b)}),
    ))
}

async fn rollback(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(v): Path<String>,
    headers: HeaderMap,
    Query(params): Query<ChangeParams>,
) -> ApiResult<Response> {
    require_admin(&p)?;
    let v = version_number(&v)?;
    let (base, _) = current(&app, &headers).await?;
    let defs: Vec<ObjectDef> =
        serde_json::from_value(load_version(&app, v).await?.0).map_err(ApiError::internal)?;
    compile(defs.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
            e.to_string(),
        )
    })?;
    change(
        &app,
        &p,
        base,
        defs,
        vec![],
        &params,
        &format!("rollback to {v}"),
        false,
    )
    .await
}

// ---- Tenants' custom fields -------------------------------------------------------

/// Roles that may manage their own tenant's custom fields.
pub const TENANT_ADMIN_ROLES: &[&str] = &["admin", "tenant_admin"];

fn require_tenant_admin(p: &Principal) -> ApiResult<()> {
    if p.roles
        .iter()
        .any(|r| TENANT_ADMIN_ROLES.contains(&r.as_str()))
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "managing custom fields needs the role admin or tenant_admin",
        ))
    }
}

async fn tenant_fields(State(app): State<Arc<App>>, p: Principal) -> Json<Value> {
    Json(json!({"tenant": p.tenant, "objects": app.tenant_fields_of(p.tenant)}))
}

/// Checks a field given as JSON exactly as a field of a definition file.
fn parse_field(object: &str, field: &Value) -> ApiResult<platform_metadata::FieldDef> {
    let stub = json!({"name": object, "label": object, "service": "tenant", "fields": [field]});
    let def = parse_definition("tenant", &stub).map_err(|errors| {
        definition_errors(
            errors
                .into_iter()
                .map(|mut e| {
                    e.path = e.path.replacen("$.fields[0]", "$", 1);
                    e
                })
                .collect(),
        )
    })?;
    let mut f = def
        .fields
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("invalid_body", "no field given"))?;
    f.custom = true;
    Ok(f)
}

/// A top-level object of the shared metadata, for custom fields.
fn custom_target(app: &App, object: &str) -> ApiResult<()> {
    match app.meta().catalog.get(object) {
        Some(o) if !o.def.child => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "no object named `{object}` takes custom fields"
        ))),
    }
}

/// Checks `fields` as the tenant's complete custom fields of `object`.
fn check_overlay(
    app: &App,
    object: &str,
    fields: &[platform_metadata::FieldDef],
) -> ApiResult<Arc<platform_metadata::Object>> {
    app.meta()
        .catalog
        .overlay(object, fields)
        .map(Arc::new)
        .map_err(definition_errors)
}

/// Records a change of a tenant's custom field and announces it.
async fn log_tenant_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    p: &Principal,
    object: &str,
    field: &str,
    action: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ApiResult<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO engine.tenant_field_log (tenant_id, object, field, action, actor, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(p.tenant)
    .bind(object)
    .bind(field)
    .bind(action)
    .bind(&p.user)
    .bind(before)
    .bind(after)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, 'tenant_fields')")
        .bind(evolve::CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

async fn add_tenant_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path(object): Path<String>,
    crate::http::JsonBody(body): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_tenant_admin(&p)?;
    custom_target(&app, &object)?;
    let field = parse_field(&object, &body)?;
    let mut fields = app
        .tenant_fields_of(p.tenant)
        .remove(&object)
        .unwrap_or_default();
    if fields.iter().any(|f| f.name == field.name) {
        return Err(ApiError::conflict(
            "field_exists",
            format!(
                "your tenant already has a custom field `{}` on `{object}`",
                field.name
            ),
        ));
    }
    fields.push(field.clone());
    check_overlay(&app, &object, &fields)?;
    let def = serde_json::to_value(&field).map_err(ApiError::internal)?;
    let mut tx = app.db.admin.begin().await?;
    sqlx::query(
        "INSERT INTO engine.tenant_fields (tenant_id, object, name, position, definition, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(p.tenant)
    .bind(&object)
    .bind(&field.name)
    .bind(fields.len() as i32)
    .bind(&def)
    .bind(&p.user)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => ApiError::conflict("field_exists", "the field was just added by someone else"),
        _ => e.into(),
    })?;
    let revision =
        log_tenant_change(&mut tx, &p, &object, &field.name, "added", None, Some(&def)).await?;
    tx.commit().await?;
    app.refresh_tenant_fields()
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"object": object, "field": def, "revision": revision, "ddl": []})),
    )
        .into_response())
}

async fn change_tenant_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, name)): Path<(String, String)>,
    crate::http::JsonBody(patch): crate::http::JsonBody,
) -> ApiResult<Response> {
    require_tenant_admin(&p)?;
    custom_target(&app, &object)?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body is a JSON merge patch of the field's attributes",
        ));
    }
    let mut fields = app
        .tenant_fields_of(p.tenant)
        .remove(&object)
        .unwrap_or_default();
    let index = fields.iter().position(|f| f.name == name).ok_or_else(|| {
        ApiError::not_found(format!(
            "your tenant has no custom field `{name}` on `{object}`"
        ))
    })?;
    let mut before = serde_json::to_value(&fields[index]).map_err(ApiError::internal)?;
    if let Value::Object(m) = &mut before {
        m.shift_remove("custom");
    }
    let mut after = before.clone();
    merge_patch(&mut after, &patch);
    let field = parse_field(&object, &after)?;
    fields[index] = field.clone();
    let obj = check_overlay(&app, &object, &fields)?;
    let table = crate::ddl::table(&obj.def);
    let mut tx = app.db.admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("{}:{object}", p.tenant))
        .execute(&mut *tx)
        .await?;
    // Every stored value must pass the new definition; values are rewritten in their new
    // canonical form (a type change converts them).
    let rows: Vec<(uuid::Uuid, Option<Value>)> = sqlx::query_as(&format!(
        "SELECT id, custom->$2 FROM {table} WHERE tenant_id = $1"
    ))
    .bind(p.tenant)
    .bind(&name)
    .fetch_all(&mut *tx)
    .await?;
    let schema = platform_metadata::values::field_schema(&field);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(ApiError::internal)?;
    let (mut ids, mut values, mut bad, mut samples) = (Vec::new(), Vec::new(), 0i64, Vec::new());
    for (id, v) in rows {
        let v = v.unwrap_or(Value::Null);
        let c = coerce(&field, &v);
        let converted = if v.is_null() && !field.required {
            Ok(Value::Null)
        } else if let Some(e) = validator.iter_errors(&c).next() {
            Err(e.to_string())
        } else {
            platform_metadata::values::normalize(&field, &field.name, &c).map_err(|i| i.message)
        };
        match converted {
            Ok(n) if n != v => {
                ids.push(id);
                values.push(n);
            }
            Ok(_) => {}
            Err(m) => {
                bad += 1;
                if samples.len() < 5 {
                    samples.push(json!({"id": id, "value": v, "problem": m}));
                }
            }
        }
    }
    if bad > 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsafe_change",
            "existing rows stop this change",
        )
        .with_details(vec![Issue::new(
            format!("{object}.{name}"),
            "values",
            format!("{bad} of your rows would not fit the changed field"),
            json!({"count": bad, "samples": samples}),
        )]));
    }
    if !ids.is_empty() {
        sqlx::query(&format!(
            "UPDATE {table} t SET custom = jsonb_set(t.custom, ARRAY[$2], v.val) FROM (SELECT unnest($3::uuid[]) AS id, unnest($4::jsonb[]) AS val) v WHERE t.tenant_id = $1 AND t.id = v.id"
        ))
        .bind(p.tenant)
        .bind(&name)
        .bind(&ids)
        .bind(values.iter().map(|v| sqlx::types::Json(v.clone())).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if field.name != name {
        // A rename moves the values to the new key, for this tenant's rows only.
        sqlx::query(&format!(
            "UPDATE {table} SET custom = (custom - $2) || jsonb_build_object($3::text, custom->$2) WHERE tenant_id = $1 AND custom ? $2"
        ))
        .bind(p.tenant)
        .bind(&name)
        .bind(&field.name)
        .execute(&mut *tx)
        .await?;
    }
    let def = serde_json::to_value(&field).map_err(ApiError::internal)?;
    sqlx::query("UPDATE engine.tenant_fields SET name = $4, definition = $5, updated_at = now(), updated_by = $6 WHERE tenant_id = $1 AND object = $2 AND name = $3")
        .bind(p.tenant)
        .bind(&object)
        .bind(&name)
        .bind(&field.name)
        .bind(&def)
        .bind(&p.user)
        .execute(&mut *tx)
        .await?;
    let revision = log_tenant_change(
        &mut tx,
        &p,
        &object,
        &field.name,
        "changed",
        Some(&before),
        Some(&def),
    )
    .await?;
    tx.commit().await?;
    app.refresh_tenant_fields()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({"object": object, "field": def, "revision": revision, "converted_rows": ids.len()}),
    )
    .into_response())
}

/// A stored value of another type in the JSON form `field` takes, where it converts.
fn coerce(field: &platform_metadata::FieldDef, v: &Value) -> Value {
    use platform_metadata::FieldType as T;
    match (field.kind, v) {
        (T::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.clone()),
        (T::Integer, Value::Bool(b)) => Value::from(*b as i64),
        (T::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => v.clone(),
        },
        (k, Value::Number(n)) if k.is_textual() => Value::String(n.to_string()),
        (k, Value::Bool(b)) if k.is_textual() => Value::String(b.to_string()),
        (T::MultiPicklist, Value::String(s)) => json!([s]),
        _ => v.clone(),
    }
}

async fn delete_tenant_field(
    State(app): State<Arc<App>>,
    p: Principal,
    Path((object, name)): Path<(String, String)>,
    Query(params): Query<ChangeParams>,
) -> ApiResult<Response> {
    require_tenant_admin(&p)?;
    let fields = app
        .tenant_fields_of(p.tenant)
        .remove(&object)
        .unwrap_or_default();
    let field = fields.iter().find(|f| f.name == name).ok_or_else(|| {
        ApiError::not_found(format!(
            "your tenant has no custom field `{name}` on `{object}`"
        ))
    })?;
    if !params.allow_destructive {
        return Err(ApiError::conflict(
            "destructive_change",
            "removing a field hides its data; repeat with ?allow_destructive=true (the values stay stored and return if the field is added again)",
        ));
    }
    if params.dry_run {
        return Ok(Json(
            json!({"object": object, "field": name, "applied": false, "dry_run": true}),
        )
        .into_response());
    }
    let before = serde_json::to_value(field).map_err(ApiError::internal)?;
    let mut tx = app.db.admin.begin().await?;
    sqlx::query(
        "DELETE FROM engine.tenant_fields WHERE tenant_id = $1 AND object = $2 AND name = $3",
    )
    .bind(p.tenant)
    .bind(&object)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    let revision =
        log_tenant_change(&mut tx, &p, &object, &name, "removed", Some(&before), None).await?;
    tx.commit().await?;
    app.refresh_tenant_fields()
        .await
        .map_err(ApiError::internal)?;
    Ok(
        Json(json!({"object": object, "field": name, "revision": revision, "applied": true}))
            .into_response(),
    )
}

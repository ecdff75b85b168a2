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

//! All SQL on generated tables: reading records with their lines, inserting, updating
//! and deleting them with their audit event and outbox envelope in the caller's
//! transaction. Values are always bound; identifiers come from checked definitions.

use crate::auth::Principal;
use crate::ddl::{ident, table};
use crate::error::{ApiError, ApiResult};
use crate::sqlvalue::{self, bind, Bind};
use chrono::Utc;
use platform_metadata::{autonumber, Catalog, FieldDef, FieldType, Issue, Object, Record};
use serde_json::{json, Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// Who and why, for audit events and envelopes.
#[derive(Debug, Clone)]
pub struct WriteCtx<'a> {
    pub principal: &'a Principal,
    /// Where non-gapless autonumbers come from.
    pub numbers: &'a NumberBlocks,
    pub request_id: String,
    pub correlation_id: String,
    pub metadata_version: i64,
}

/// The select list of an object's table.
pub fn select_list(obj: &Object) -> String {
    let mut cols = vec![
        "id",
        "version",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if obj.parent.is_some() {
        cols.push("parent_id".into());
    } else {
        cols.push("custom".into());
    }
    cols.extend(obj.columns().map(|f| ident(&f.name)));
    format!("/* {} */ {}", obj.shape, cols.join(", "))
}

/// A row as the API shows it: id, fields in definition order, then system fields.
pub fn row_to_record(obj: &Object, row: &PgRow) -> ApiResult<Record> {
    let mut rec = Map::new();
    let id: Uuid = row.try_get("id")?;
    rec.insert("id".into(), json!(id.to_string()));
    for f in obj.columns() {
        rec.insert(f.name.clone(), sqlvalue::decode(row, &f.name, f)?);
    }
    if obj.custom_fields().next().is_some() {
        let custom: sqlx::types::Json<Value> = row.try_get("custom")?;
        for f in obj.custom_fields() {
            rec.insert(
                f.name.clone(),
                custom.0.get(&f.name).cloned().unwrap_or(Value::Null),
            );
        }
    }
    if obj.parent.is_none() {
        rec.insert("version".into(), json!(row.try_get::<i64, _>("version")?));
        for c in ["created_at", "updated_at"] {
            let t: chrono::DateTime<Utc> = row.try_get(c)?;
            rec.insert(
                c.into(),
                json!(platform_metadata::values::format_datetime(t)),
            );
        }
        for c in ["created_by", "updated_by"] {
            rec.insert(c.into(), json!(row.try_get::<String, _>(c)?));
        }
    }
    Ok(rec)
}

/// Reads one record with its lines. `for_update` locks the row.
pub async fn fetch(
    conn: &mut PgConnection,
    cat: &Catalog,
    obj: &Object,
    tenant: Uuid,
    id: Uuid,
    for_update: bool,
) -> ApiResult<Option<Record>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND id = $2{}",
        select_list(obj),
        table(&obj.def),
        if for_update { " FOR UPDATE" } else { "" }
    );
    let Some(row) = sqlx::query(&sql)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut recs = vec![row_to_record(obj, &row)?];
    attach_children(conn, cat, obj, tenant, &mut recs, None).await?;
    Ok(recs.pop())
}

/// Embeds the lines of every record in `recs` (only the children fields in `only`, when
/// given), one query per children field.
pub async fn attach_children(
    conn: &mut PgConnection,
    cat: &Catalog,
    obj: &Object,
    tenant: Uuid,
    recs: &mut [Record],
    only: Option<&[String]>,
) -> ApiResult<()> {
    if recs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = recs
        .iter()
        .filter_map(|r| r.get("id")?.as_str()?.parse().ok())
        .collect();
    for f in obj.children() {
        if only.is_some_and(|o| !o.contains(&f.name)) {
            continue;
        }
        let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) else {
            continue;
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND parent_id = ANY($2) ORDER BY parent_id, position",
            select_list(child),
            table(&child.def)
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let mut by_parent: HashMap<Uuid, Vec<Record>> = HashMap::new();
        for row in &rows {
            let parent: Uuid = row.try_get("parent_id")?;
            by_parent
                .entry(parent)
                .or_default()
                .push(row_to_record(child, row)?);
        }
        if child.children().next().is_some() {
            for lines in by_parent.values_mut() {
                Box::pin(attach_children(conn, cat, child, tenant, lines, None)).await?;
            }
        }
        for rec in recs.iter_mut() {
            let id: Option<Uuid> = rec
                .get("id")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok());
            let lines = id.and_then(|id| by_parent.remove(&id)).unwrap_or_default();
            rec.insert(
                f.name.clone(),
                Value::Array(lines.into_iter().map(Value::Object).collect()),
            );
        }
    }
    // Keep system fields last, as in a record without lines.
    for rec in recs.iter_mut() {
        for k in [
            "version",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        ] {
            if let Some(v) = rec.shift_remove(k) {
                rec.insert(k.into(), v);
            }
        }
    }
    Ok(())
}

/// Fills autonumber fields from the tenant's gap-free counters.
async fn assign_numbers(
    conn: &mut PgConnection,
    obj: &Object,
    tenant: Uuid,
    rec: &mut Record,
    ctx: &WriteCtx<'_>,
) -> ApiResult<()> {
    let today = Utc::now().date_naive();
    for (field, parts) in obj.autonumbers() {
        let period = autonumber::period(parts, today);
        let gapless = obj.field(field).is_some_and(|f| f.gapless);
        let n: i64 = if gapless {
            // In the writing transaction: the counter row stays locked until commit, so
            // numbers follow commit order without gaps.
            sqlx::query_scalar(
                "INSERT INTO engine.sequences AS s (tenant_id, object, field, period, value) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (tenant_id, object, field, period) DO UPDATE SET value = s.value + 1 RETURNING value",
            )
            .bind(tenant)
            .bind(obj.name())
            .bind(field)
            .bind(&period)
            .fetch_one(&mut *conn)
            .await?
        } else {
            ctx.numbers.next(tenant, obj.name(), field, &period).await?
        };
        rec.insert(
            field.clone(),
            json!(autonumber::render(parts, today, Some(n))),
        );
    }
    Ok(())
}

/// Numbers handed out from blocks reserved in the tenant's counter, for autonumbers
/// that need not be gap-free: a create does not hold the counter's lock until it
/// commits (that lock made every create of a tenant wait for the previous one's commit).
/// Numbers are unique and increase within a process; a crash or a failed create leaves
/// a gap, and two processes interleave blocks.
#[derive(Debug)]
pub struct NumberBlocks {
    pool: sqlx::PgPool,
    /// (tenant, object, field, period) -> (next, last) of the current block.
    blocks: std::sync::Mutex<HashMap<CounterKey, (i64, i64)>>,
}

const NUMBER_BLOCK: i64 = 32;

/// (tenant, object, field, period)
type CounterKey = (Uuid, String, String, String);

impl NumberBlocks {
    pub fn new(pool: sqlx::PgPool) -> Self {
        NumberBlocks {
            pool,
            blocks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn next(
        &self,
        tenant: Uuid,
        object: &str,
        field: &str,
        period: &str,
    ) -> ApiResult<i64> {
        let key = (
            tenant,
            object.to_string(),
            field.to_string(),
            period.to_string(),
        );
        {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((next, last)) = blocks.get_mut(&key) {
                if *next <= *last {
                    *next += 1;
                    return Ok(*next - 1);
                }
            }
        }
        let mut tx = crate::db::tenant_tx(&self.pool, tenant).await?;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO engine.sequences AS s (tenant_id, object, field, period, value) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, object, field, period) DO UPDATE SET value = s.value + $5 RETURNING value",
        )
        .bind(tenant)
        .bind(object)
        .bind(field)
        .bind(period)
        .bind(NUMBER_BLOCK)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let first = last - NUMBER_BLOCK + 1;
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let cur = blocks.entry(key).or_insert((first + 1, last));
        if cur.0 > cur.1 {
            *cur = (first + 1, last);
        }
        Ok(first)
    }
}

/// The tenant's custom field values of `rec` that are set.
fn custom_values(obj: &Object, rec: &Record) -> Value {
    Value::Object(
        obj.custom_fields()
            .filter_map(|f| {
                rec.get(&f.name)
                    .filter(|v| !v.is_null())
                    .map(|v| (f.name.clone(), v.clone()))
            })
            .collect(),
    )
}

fn field_binds(obj: &Object, rec: &Record) -> ApiResult<Vec<(String, Bind)>> {
    obj.columns()
        .map(|f| {
            let v = rec.get(&f.name).unwrap_or(&Value::Null);
            sqlvalue::to_bind(f, v)
                .map(|b| (f.name.clone(), b))
                .map_err(ApiError::internal)
        })
        .collect()
}

/// Inserts a record and its lines; returns it as stored.
pub async fn insert(
    conn: &mut PgConnection,
    cat: &Catalog,
    obj: &Object,
    id: Uuid,
    mut rec: Record,
    ctx: &WriteCtx<'_>,
) -> ApiResult<Record> {
    let tenant = ctx.principal.tenant;
    assign_numbers(conn, obj, tenant, &mut rec, ctx).await?;
    let mut binds = field_binds(obj, &rec)?;
    if obj.parent.is_none() {
        binds.push(("custom".into(), Bind::Json(Some(custom_values(obj, &rec)))));
    }
    let mut cols = vec![
        "id".to_string(),
        "tenant_id".into(),
        "created_by".into(),
        "updated_by".into(),
    ];
    cols.extend(binds.iter().map(|(n, _)| ident(n)));
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        table(&obj.def),
        cols.join(", "),
        params.join(", "),
        select_list(obj)
    );
    let mut q = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .bind(&ctx.principal.user)
        .bind(&ctx.principal.user);
    for (_, b) in binds {
        q = bind(q, b);
    }
    let row = q
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(obj, "", e))?;
    let mut stored = row_to_record(obj, &row)?;
    insert_children(conn, cat, obj, tenant, id, &rec, &mut stored, ctx).await?;
    Ok(stored)
}

#[allow(clippy::too_many_arguments)]
async fn insert_children(
    conn: &mut PgConnection,
    cat: &Catalog,
    obj: &Object,
    tenant: Uuid,
    parent_id: Uuid,
    rec: &Record,
    stored: &mut Record,
    ctx: &WriteCtx<'_>,
) -> ApiResult<()> {
    for f in obj.children() {
        let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) else {
            continue;
        };
        let lines: Vec<&Map<String, Value>> = rec
            .get(&f.name)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|l| l.as_object()).collect())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(lines.len());
        if !lines.is_empty() {
            let fields: Vec<&FieldDef> = child.columns().collect();
            let mut cols = vec![
                "id",
                "tenant_id",
                "created_by",
                "updated_by",
                "parent_id",
                "position",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
            cols.extend(fields.iter().map(|f| ident(&f.name)));
            let width = cols.len();
            let values: Vec<String> = (0..lines.len())
                .map(|i| {
                    format!(
                        "({})",
                        (1..=width)
                            .map(|j| format!("${}", i * width + j))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {} RETURNING position, {}",
                table(&child.def),
                cols.join(", "),
                values.join(", "),
                select_list(child)
            );
            let mut ids = Vec::with_capacity(lines.len());
            let mut q = sqlx::query(&sql);
            for (pos, line) in lines.iter().enumerate() {
                let line_id = line
                    .get("id")
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(Uuid::now_v7);
                ids.push(line_id);
                q = q
                    .bind(line_id)
                    .bind(tenant)
                    .bind(&ctx.principal.user)
                    .bind(&ctx.principal.user)
                    .bind(parent_id)
                    .bind(pos as i32);
                for (_, b) in field_binds(child, line)? {
                    q = bind(q, b);
                }
            }
            let rows = q
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db_error(child, &format!("{}[]", f.name), e))?;
            let mut numbered: Vec<(i32, Record)> = rows
                .iter()
                .map(|r| Ok((r.try_get::<i32, _>("position")?, row_to_record(child, r)?)))
                .collect::<ApiResult<_>>()?;
            numbered.sort_by_key(|(p, _)| *p);
            for (i, (_, mut line_rec)) in numbered.into_iter().enumerate() {
                if child.children().next().is_some() {
                    Box::pin(insert_children(
                        conn,
                        cat,
                        child,
                        tenant,
                        ids[i],
                        lines[i],
                        &mut line_rec,
                        ctx,
                    ))
                    .await?;
                }
                out.push(Value::Object(line_rec));
            }
        }
        stored.insert(f.name.clone(), Value::Array(out));
    }
    for k in [
        "version",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
    ] {
        if let Some(v) = stored.shift_remove(k) {
            stored.insert(k.into(), v);
        }
    }
    Ok(())
}

/// Updates a locked record to `rec` (complete, as the write pipeline made it).
#[allow(clippy::too_many_arguments)]
pub async fn update(
    conn: &mut PgConnection,
    cat: &Catalog,
    obj: &Object,
    id: Uuid,
    rec: Record,
    existing: &Record,
    ctx: &WriteCtx<'_>,
) -> ApiResult<Record> {
    let tenant = ctx.principal.tenant;
    let mut binds = field_binds(obj, &rec)?;
    let mut sets: Vec<String> = binds
        .iter()
        .enumerate()
        .map(|(i, (n, _))| format!("{} = ${}", ident(n), i + 4))
        .collect();
    let names: Vec<String> = obj.custom_fields().map(|f| f.name.clone()).collect();
    if !names.is_empty() {
        // Replace this tenant's known custom fields; keep values of fields it dropped.
        sets.push(format!(
            "custom = (custom - ${}::text[]) || ${}",
            binds.len() + 4,
            binds.len() + 5
        ));
        binds.push((String::new(), Bind::TextList(names)));
        binds.push((String::new(), Bind::Json(Some(custom_values(obj, &rec)))));
    }
    let sql = format!(
        "UPDATE {} SET version = version + 1, updated_at = now(), updated_by = $3{}{} WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        table(&obj.def),
        if sets.is_empty() { "" } else { ", " },
        sets.join(", "),
        select_list(obj)
    );
    let mut q = sqlx::query(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&ctx.principal.user);
    for (_, b) in binds {
        q = bind(q, b);
    }
    let row = q
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(obj, "", e))?;
    let mut stored = row_to_record(obj, &row)?;
    // Lines are replaced as a whole when they changed; ids given by the client are kept.
    for f in obj.children() {
        let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) else {
            continue;
        };
        if rec.get(&f.name) != existing.get(&f.name) {
            let known: Vec<&str> = existing
                .get(&f.name)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|l| l.get("id")?.as_str()).collect())
                .unwrap_or_default();
            let mut unknown = Vec::new();
            if let Some(Value::Array(lines)) = rec.get(&f.name) {
                for (i, l) in lines.iter().enumerate() {
                    if let Some(lid) = l.get("id").and_then(|v| v.as_str()) {
                        if !known.contains(&lid) {
                            unknown.push(Issue::new(
                                format!("{}[{i}].id", f.name),
                                "unknown_line",
                                "is not the id of a line of this record",
                                json!(lid),
                            ));
                        }
                    }
                }
            }
            if !unknown.is_empty() {
                return Err(ApiError::validation(unknown));
            }
            sqlx::query(&format!(
                "DELETE FROM {} WHERE tenant_id = $1 AND parent_id = $2",
                table(&child.def)
            ))
            .bind(tenant)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
    }
    let changed: Vec<String> = obj
        .children()
        .filter(|f| rec.get(&f.name) != existing.get(&f.name))
        .map(|f| f.name.clone())
        .collect();
    let mut only_changed = rec.clone();
    for f in obj.children() {
        if !changed.contains(&f.name) {
            only_changed.insert(f.name.clone(), Value::Array(vec![]));
        }
    }
    insert_children(conn, cat, obj, tenant, id, &only_changed, &mut stored, ctx).await?;
    for f in obj.children() {
        if !changed.contains(&f.name) {
            stored.insert(
                f.name.clone(),
                existing.get(&f.name).cloned().unwrap_or(json!([])),
            );
        }
    }
    for k in [
        "version",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
    ] {
        if let Some(v) = stored.shift_remove(k) {
            stored.insert(k.into(), v);
        }
    }
    Ok(stored)
}

/// Deletes a locked record (its lines go with it).
pub async fn delete(
    conn: &mut PgConnection,
    obj: &Object,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<()> {
    sqlx::query(&format!(
        "DELETE FROM {} WHERE tenant_id = $1 AND id = $2",
        table(&obj.def)
    ))
    .bind(tenant)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(|e| db_error(obj, "", e))?;
    Ok(())
}

/// Field-level changes between two states of a record (None: created / deleted).
pub fn diff(before: Option<&Record>, after: Option<&Record>) -> Value {
    let mut out = Map::new();
    let empty = Map::new();
    let b = before.unwrap_or(&empty);
    let a = after.unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
    for k in keys {
        if matches!(
            k.as_str(),
            "version" | "updated_at" | "updated_by" | "created_at" | "created_by" | "id"
        ) {
            continue;
        }
        let (bv, av) = (
            b.get(k).unwrap_or(&Value::Null),
            a.get(k).unwrap_or(&Value::Null),
        );
        if bv != av {
            let mut c = Map::new();
            if before.is_some() {
                c.insert("before".into(), bv.clone());
            }
            if after.is_some() {
                c.insert("after".into(), av.clone());
            }
            out.insert(k.clone(), Value::Object(c));
        }
    }
    Value::Object(out)
}

/// Writes the audit event and the outbox envelope of one change, in one statement.
#[allow(clippy::too_many_arguments)]
pub async fn record_event(
    conn: &mut PgConnection,
    obj: &Object,
    id: Uuid,
    action: &str,
    version: i64,
    changes: Value,
    payload: &Record,
    ctx: &WriteCtx<'_>,
) -> ApiResult<()> {
    let event_id = Uuid::now_v7();
    let now = Utc::now();
    let event_type = format!("{}.{}.{}", obj.def.service, obj.name(), action);
    let envelope = json!({
        "id": event_id,
        "type": event_type,
        "tenant": ctx.principal.tenant,
        "object": obj.name(),
        "record_id": id,
        "record_version": version,
        "occurred_at": platform_metadata::values::format_datetime(now),
        "actor": {"user": ctx.principal.user, "roles": ctx.principal.roles},
        "correlation_id": ctx.correlation_id,
        "request_id": ctx.request_id,
        "metadata_version": ctx.metadata_version,
        "payload": payload,
    });
    sqlx::query(
        "WITH audit AS (
            INSERT INTO engine.audit_events (id, tenant_id, object, record_id, action, record_version, actor, roles,
                request_id, correlation_id, metadata_version, changes, occurred_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)),
         unsealed AS (INSERT INTO engine.audit_unsealed (event_id, tenant_id) VALUES ($1, $2))
         INSERT INTO engine.outbox (id, tenant_id, event_type, envelope, created_at) VALUES ($1, $2, $14, $15, $13)",
    )
    .bind(event_id)
    .bind(ctx.principal.tenant)
    .bind(obj.name())
    .bind(id)
    .bind(action)
    .bind(version)
    .bind(&ctx.principal.user)
    .bind(&ctx.principal.roles)
    .bind(&ctx.request_id)
    .bind(&ctx.correlation_id)
    .bind(ctx.metadata_version)
    .bind(sqlx::types::Json(changes))
    .bind(now)
    .bind(event_type)
    .bind(sqlx::types::Json(envelope))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Maps constraint violations to client errors naming the field; anything else is
/// internal. `prefix` places a line's field (`lines[]`).
pub fn db_error(obj: &Object, prefix: &str, e: sqlx::Error) -> ApiError {
    let sqlx::Error::Database(db) = &e else {
        return e.into();
    };
    let constraint = db.constraint().unwrap_or_default().to_string();
    let field_of = |suffix: &str| {
        obj.def
            .fields
            .iter()
            .find(|f| crate::ddl::constraint_name(obj.name(), &f.name, suffix) == constraint)
            .map(|f| {
                if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}.{}", f.name)
                }
            })
    };
    match db.code().as_deref() {
        Some("23505") => match field_of("key") {
            Some(field) => ApiError::validation(vec![Issue::new(
                field,
                "unique",
                "is already used by another record",
                Value::Null,
            )]),
            None => ApiError::conflict("duplicate", "a record with this id already exists"),
        },
        Some("23503")
            if db.message().contains("still referenced")
                || db.message().contains("is still referenced") =>
        {
            ApiError::conflict(
                "referenced",
                format!(
                    "this {} is still referenced by other records; delete or change those first",
                    obj.name()
                ),
            )
        }
        Some("23503") => match field_of("fkey") {
            Some(field) => {
                let target = obj
                    .field(field.rsplit('.').next().unwrap_or_default())
                    .and_then(|f| f.target.clone())
                    .unwrap_or_default();
                ApiError::validation(vec![Issue::new(
                    field,
                    "reference",
                    format!("no {target} with this id"),
                    Value::Null,
                )])
            }
            None => ApiError::conflict(
                "referenced",
                format!("this {} is still referenced by other records", obj.name()),
            ),
        },
        Some("23502") => {
            let column = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|d| d.column())
                .unwrap_or_default();
            ApiError::validation(vec![Issue::new(
                column,
                "required",
                "is required",
                Value::Null,
            )])
        }
        _ => e.into(),
    }
}

/// Whether the field is of a type stored per row (used by list queries).
pub fn is_stored(f: &FieldDef) -> bool {
    f.kind != FieldType::Children
}

//! Schema evolution: bringing the tables from the newest metadata version to a new set of
//! definitions, in one transaction, serialised across processes, refusing what would
//! lose or break data. Used at start-up (definition files), by the Metadata API and by
//! `platform metadata apply`.

use crate::ddl::{self, Change, Rename};
use platform_metadata::{Catalog, ObjectDef};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::{Executor, PgPool, Row};
use std::collections::BTreeMap;

/// The PostgreSQL channel on which a new metadata version is announced.
pub const CHANNEL: &str = "platform_metadata";
const LOCK_KEY: i64 = 7_261_001;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `files`, `api`, `apply`, `rollback`
    pub source: String,
    pub actor: String,
    /// The version the change is based on; a newer current version is a conflict.
    pub base_version: Option<i64>,
    pub allow_destructive: bool,
    /// Plan and check, change nothing.
    pub dry_run: bool,
    pub renames: Vec<Rename>,
    /// For `files`: the files' own definitions and hash.
    pub files: Option<(Value, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The new version (or, unchanged / dry run, the version it is / would be).
    pub version: i64,
    pub previous_version: i64,
    pub applied: bool,
    pub changes: Vec<Change>,
    pub ddl: Vec<String>,
    pub diff: Value,
}

/// Rows that stop a change.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub field: String,
    pub rule: String,
    pub message: String,
    pub count: i64,
    /// A few offending rows: id, tenant and value.
    pub samples: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    #[error("the metadata is at version {current}, not {given}")]
    Stale { current: i64, given: i64 },
    #[error("destructive changes need allow_destructive: {}", .0.iter().map(|c| c.description.clone()).collect::<Vec<_>>().join("; "))]
    Destructive(Vec<Change>),
    #[error("unsupported change: {}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("existing rows stop the change: {}", .0.iter().map(|v| format!("{} {}: {} ({} rows)", v.field, v.rule, v.message, v.count)).collect::<Vec<_>>().join("; "))]
    Unsafe(Vec<Violation>),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored metadata is unreadable: {0}")]
    Stored(String),
}

/// The newest version: number, definitions and source.
pub async fn latest(pool: &PgPool) -> Result<Option<(i64, Vec<ObjectDef>)>, EvolveError> {
    let row = sqlx::query(
        "SELECT version, definitions FROM engine.metadata_versions ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let defs: Value = r.try_get("definitions")?;
            Ok(Some((
                r.try_get("version")?,
                serde_json::from_value(defs).map_err(|e| EvolveError::Stored(e.to_string()))?,
            )))
        }
    }
}

/// The definitions to start with, given the files' catalog: the files when the database
/// has nothing newer; the newest version when the files did not change since they were
/// last applied (so the Metadata API's changes survive a restart); otherwise the files'
/// change merged into the newest version (objects and fields added through the API are
/// kept).
pub async fn start_definitions(
    pool: &PgPool,
    files: &Catalog,
) -> Result<Vec<ObjectDef>, EvolveError> {
    let file_defs = files.defs();
    let Some((_, current)) = latest(pool).await? else {
        return Ok(file_defs);
    };
    let last_files: Option<(String, Value)> = sqlx::query_as(
        "SELECT files_hash, files_definitions FROM engine.metadata_versions WHERE files_hash IS NOT NULL ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let Some((hash, base)) = last_files else {
        return Ok(file_defs);
    };
    if hash == files.hash {
        return Ok(current);
    }
    let base: Vec<ObjectDef> =
        serde_json::from_value(base).map_err(|e| EvolveError::Stored(e.to_string()))?;
    Ok(merge(&base, &current, &file_defs))
}

/// Three-way merge of definitions: `theirs` (new files) over `base` (old files), keeping
/// what `ours` (the database) added on top of `base`.
pub fn merge(base: &[ObjectDef], ours: &[ObjectDef], theirs: &[ObjectDef]) -> Vec<ObjectDef> {
    let base_by: BTreeMap<&str, &ObjectDef> = base.iter().map(|d| (d.name.as_str(), d)).collect();
    let theirs_names: Vec<&str> = theirs.iter().map(|d| d.name.as_str()).collect();
    let mut out = Vec::new();
    for t in theirs {
        let mut d = t.clone();
        if let (Some(o), Some(b)) = (
            ours.iter().find(|o| o.name == t.name),
            base_by.get(t.name.as_str()),
        ) {
            for f in &o.fields {
                let added_by_api = !b.fields.iter().any(|bf| bf.name == f.name);
                if added_by_api && !d.fields.iter().any(|x| x.name == f.name) {
                    d.fields.push(f.clone());
                }
            }
        }
        out.push(d);
    }
    for o in ours {
        if !base_by.contains_key(o.name.as_str()) && !theirs_names.contains(&o.name.as_str()) {
            out.push(o.clone());
        }
    }
    out
}

/// Field-level differences between two sets of definitions.
pub fn diff_defs(old: &[ObjectDef], new: &[ObjectDef]) -> Value {
    let to_map = |defs: &[ObjectDef]| -> BTreeMap<String, Value> {
        defs.iter()
            .map(|d| (d.name.clone(), serde_json::to_value(d).unwrap_or_default()))
            .collect()
    };
    let (a, b) = (to_map(old), to_map(new));
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Map::new();
    for (name, nd) in &b {
        match a.get(name) {
            None => added.push(json!(name)),
            Some(od) if od != nd => {
                let mut c = Map::new();
                let fields = |v: &Value| -> BTreeMap<String, Value> {
                    v["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| {
                            (
                                f["name"].as_str().unwrap_or_default().to_string(),
                                f.clone(),
                            )
                        })
                        .collect()
                };
                let (of, nf) = (fields(od), fields(nd));
                let fa: Vec<&String> = nf.keys().filter(|k| !of.contains_key(*k)).collect();
                let fr: Vec<&String> = of.keys().filter(|k| !nf.contains_key(*k)).collect();
                let fc: Map<String, Value> = nf
                    .iter()
                    .filter_map(|(k, v)| {
                        of.get(k)
                            .filter(|o| *o != v)
                            .map(|o| (k.clone(), json!({"before": o, "after": v})))
                    })
                    .collect();
                if !fa.is_empty() {
                    c.insert(
                        "fields_added".into(),
                        json!(fa.iter().map(|k| &nf[*k]).collect::<Vec<_>>()),
                    );
                }
                if !fr.is_empty() {
                    c.insert("fields_removed".into(), json!(fr));
                }
                if !fc.is_empty() {
                    c.insert("fields_changed".into(), Value::Object(fc));
                }
                if let (Value::Object(om), Value::Object(nm)) = (od, nd) {
                    for (k, v) in nm {
                        if k != "fields" && om.get(k) != Some(v) {
                            c.insert(k.clone(), json!({"before": om.get(k), "after": v}));
                        }
                    }
                    for k in om.keys() {
                        if k != "fields" && !nm.contains_key(k) {
                            c.insert(k.clone(), json!({"before": om[k], "after": null}));
                        }
                    }
                }
                changed.insert(name.clone(), Value::Object(c));
            }
            _ => {}
        }
    }
    for name in a.keys() {
        if !b.contains_key(name) {
            removed.push(json!(name));
        }
    }
    json!({"objects_added": added, "objects_removed": removed, "objects_changed": changed})
}

/// Builds indexes concurrently and validates new foreign keys, after the version is
/// committed, so writes to a large table are not blocked meanwhile. A failed index build
/// leaves an invalid index, which is dropped; the failure is logged (the field works,
/// only slower).
async fn run_deferred(pool: &PgPool, changes: &[Change]) {
    for s in changes.iter().flat_map(|c| c.deferred.iter()) {
        if let Err(e) = pool.execute(s.as_str()).await {
            tracing::error!(statement = %s, error = %e, "deferred schema statement failed");
            if let Some(name) = s
                .strip_prefix("CREATE INDEX CONCURRENTLY IF NOT EXISTS ")
                .and_then(|r| r.split(" ON ").next())
            {
                let schema = s
                    .split(" ON ")
                    .nth(1)
                    .and_then(|t| t.split('.').next())
                    .unwrap_or("public");
                let _ = pool
                    .execute(format!("DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}").as_str())
                    .await;
            }
        }
    }
}

/// Brings the tables to `catalog` and records a new version when anything changed.
///
/// When the plan changes a column's type, the change is first planned and checked without
/// changing anything; then the new column is prepared and filled online
/// ([`convert_online`]); then the version is applied, swapping the columns by name. If
/// that last step fails, the prepared columns are removed again.
pub async fn apply(
    pool: &PgPool,
    catalog: &Catalog,
    opts: &Options,
) -> Result<Outcome, EvolveError> {
    let preflight = apply_once(
        pool,
        catalog,
        &Options {
            dry_run: true,
            ..opts.clone()
        },
    )
    .await?;
    let conversions: Vec<ddl::Conversion> = preflight
        .changes
        .iter()
        .filter_map(|c| c.convert.clone())
        .collect();
    // Nothing to do (the same definitions), or only a plan was asked for.
    if opts.dry_run || preflight.version == preflight.previous_version {
        return Ok(preflight);
    }
    for cv in &conversions {
        if let Err(e) = convert_online(pool, cv).await {
            for cv in &conversions {
                drop_conversion(pool, cv).await;
            }
            return Err(e);
        }
    }
    let result = apply_once(pool, catalog, opts).await;
    if result.is_err() {
        for cv in &conversions {
            drop_conversion(pool, cv).await;
        }
    }
    result
}

/// Prepares a type change: the shadow column and its trigger (one short transaction),
/// then fills it for existing rows in batches of 5,000 by primary key, each its own
/// transaction, so no write waits long. Writes meanwhile are converted by the trigger.
async fn convert_online(pool: &PgPool, cv: &ddl::Conversion) -> Result<(), EvolveError> {
    drop_conversion(pool, cv).await;
    let mut tx = pool.begin().await?;
    tx.execute("SET LOCAL lock_timeout = '5s'").await?;
    tx.execute(
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            cv.table, cv.shadow, cv.column_type
        )
        .as_str(),
    )
    .await?;
    tx.execute(
        format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $conv$ BEGIN NEW.{} := ({}); RETURN NEW; END $conv$",
            cv.function, cv.shadow, cv.using_new
        )
        .as_str(),
    )
    .await?;
    tx.execute(
        format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            cv.trigger, cv.table, cv.function
        )
        .as_str(),
    )
    .await?;
    tx.commit().await?;
    let sql = format!(
        "WITH batch AS (SELECT tenant_id, id FROM {t} WHERE (tenant_id, id) > ($1, $2) ORDER BY tenant_id, id LIMIT 5000),
              done AS (UPDATE {t} AS r SET {s} = ({u}) FROM batch b WHERE r.tenant_id = b.tenant_id AND r.id = b.id)
         SELECT tenant_id, id FROM batch ORDER BY tenant_id DESC, id DESC LIMIT 1",
        t = cv.table,
        s = cv.shadow,
        u = cv.using_row
    );
    let mut last = (uuid::Uuid::nil(), uuid::Uuid::nil());
    while let Some(next) = sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid)>(&sql)
        .bind(last.0)
        .bind(last.1)
        .fetch_optional(pool)
        .await?
    {
        last = next;
    }
    Ok(())
}

/// Removes a prepared conversion (after a failure, or a leftover of one).
async fn drop_conversion(pool: &PgPool, cv: &ddl::Conversion) {
    for s in [
        format!("DROP TRIGGER IF EXISTS {} ON {}", cv.trigger, cv.table),
        format!("DROP FUNCTION IF EXISTS {}()", cv.function),
        format!(
            "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
            cv.table, cv.shadow
        ),
    ] {
        if let Err(e) = pool.execute(s.as_str()).await {
            tracing::warn!(statement = %s, error = %e, "cannot remove a prepared conversion");
        }
    }
}

async fn apply_once(
    pool: &PgPool,
    catalog: &Catalog,
    opts: &Options,
) -> Result<Outcome, EvolveError> {
    let mut tx = pool.begin().await?;
    tx.execute(format!("SELECT pg_advisory_xact_lock({LOCK_KEY})").as_str())
        .await?;
    // DDL waits at most this long for a lock, so a long transaction elsewhere makes the
    // change fail rather than queue every request behind it.
    tx.execute("SET LOCAL lock_timeout = '5s'").await?;
    let row = sqlx::query("SELECT version, hash, definitions FROM engine.metadata_versions ORDER BY version DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (prev, prev_hash, old_defs) = match row {
        None => (0, String::new(), Vec::new()),
        Some(r) => {
            let defs: Value = r.try_get("definitions")?;
            (
                r.try_get::<i64, _>("version")?,
                r.try_get::<String, _>("hash")?,
                serde_json::from_value::<Vec<ObjectDef>>(defs)
                    .map_err(|e| EvolveError::Stored(e.to_string()))?,
            )
        }
    };
    if let Some(given) = opts.base_version {
        if given != prev {
            return Err(EvolveError::Stale {
                current: prev,
                given,
            });
        }
    }
    let version = prev + 1;
    let new_defs = catalog.defs();
    let diff = diff_defs(&old_defs, &new_defs);
    if prev_hash == catalog.hash {
        let files_changed = match &opts.files {
            Some((_, h)) => {
                let last: Option<String> = sqlx::query_scalar(
                    "SELECT files_hash FROM engine.metadata_versions WHERE files_hash IS NOT NULL ORDER BY version DESC LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await?;
                last.as_deref() != Some(h.as_str())
            }
            None => false,
        };
        if !files_changed {
            return Ok(Outcome {
                version: prev,
                previous_version: prev,
                applied: false,
                changes: vec![],
                ddl: vec![],
                diff,
            });
        }
    }
    let changes = ddl::plan(&old_defs, catalog, &opts.renames, version);
    let refused: Vec<String> = changes.iter().filter_map(|c| c.refused.clone()).collect();
    if !refused.is_empty() {
        return Err(EvolveError::Refused(refused));
    }
    let destructive: Vec<Change> = changes.iter().filter(|c| c.destructive).cloned().collect();
    if !destructive.is_empty() && !opts.allow_destructive {
        return Err(EvolveError::Destructive(destructive));
    }
    let mut violations = Vec::new();
    for check in changes.iter().flat_map(|c| c.checks.iter()) {
        let (count_sql, sample_sql) = if check.duplicates {
            (
                format!("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {bad} GROUP BY tenant_id, {c} HAVING count(*) > 1) d", t = check.table, bad = check.bad, c = check.column),
                format!(
                    "SELECT json_build_object('tenant_id', tenant_id, 'value', {c}::text, 'rows', count(*)) FROM {t} WHERE {bad} GROUP BY tenant_id, {c} HAVING count(*) > 1 LIMIT 5",
                    t = check.table, bad = check.bad, c = check.column
                ),
            )
        } else {
            (
                format!("SELECT count(*) FROM {} WHERE {}", check.table, check.bad),
                format!(
                    "SELECT json_build_object('id', id, 'tenant_id', tenant_id, 'value', {c}::text) FROM {t} WHERE {bad} LIMIT 5",
                    t = check.table, bad = check.bad, c = check.column
                ),
            )
        };
        let count: i64 = sqlx::query_scalar(&count_sql).fetch_one(&mut *tx).await?;
        if count > 0 {
            let samples: Vec<Value> =
                sqlx::query_scalar::<_, sqlx::types::Json<Value>>(&sample_sql)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|j| j.0)
                    .collect();
            violations.push(Violation {
                field: check.field.clone(),
                rule: check.rule.clone(),
                message: format!("{count} existing row(s) would break it: {}", check.message),
                count,
                samples,
            });
        }
    }
    if !violations.is_empty() {
        return Err(EvolveError::Unsafe(violations));
    }
    let ddl: Vec<String> = changes
        .iter()
        .flat_map(|c| c.sql.iter().map(|s| format!("{s};")))
        .collect();
    // Statements run after commit are part of the plan and of the stored DDL.
    let ddl: Vec<String> = ddl
        .into_iter()
        .chain(
            changes
                .iter()
                .flat_map(|c| c.deferred.iter().map(|s| format!("{s}; -- after commit"))),
        )
        .collect();
    if opts.dry_run {
        tx.rollback().await?;
        return Ok(Outcome {
            version,
            previous_version: prev,
            applied: false,
            changes,
            ddl,
            diff,
        });
    }
    for c in &changes {
        for s in &c.sql {
            tx.execute(s.as_str()).await?;
        }
    }
    sqlx::query(
        "INSERT INTO engine.metadata_versions (version, hash, definitions, ddl, source, applied_by, diff, base_version, files_hash, files_definitions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(version)
    .bind(&catalog.hash)
    .bind(serde_json::to_value(&new_defs).unwrap_or_default())
    .bind(ddl.join("\n"))
    .bind(&opts.source)
    .bind(&opts.actor)
    .bind(&diff)
    .bind(opts.base_version)
    .bind(opts.files.as_ref().map(|(_, h)| h.clone()))
    .bind(opts.files.as_ref().map(|(d, _)| d.clone()))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    run_deferred(pool, &changes).await;
    Ok(Outcome {
        version,
        previous_version: prev,
        applied: true,
        changes,
        ddl,
        diff,
    })
}

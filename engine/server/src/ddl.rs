//! Generated tables: the DDL for a catalog, and the plan that brings the database from
//! the metadata version it was built from to the current definitions.
//!
//! Identifiers come only from checked definitions (lower snake case, at most 40
//! characters) and are always quoted. Additive changes (new objects, fields, indexes)
//! apply in one transaction; destructive ones (dropping or retyping a column, dropping
//! a table) are refused unless explicitly allowed.

use platform_metadata::{Catalog, FieldDef, FieldType, ObjectDef, OnDelete};
use serde_json::Value;
use sqlx::{Executor, PgPool};
use std::collections::BTreeMap;

pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `"offers"."offer"`
pub fn table(def: &ObjectDef) -> String {
    format!("{}.{}", ident(&def.service), ident(&def.name))
}

/// The column type of a stored field.
pub fn column_type(f: &FieldDef) -> String {
    let t = match f.kind {
        FieldType::Formula => f.returns.unwrap_or(FieldType::Text),
        k => k,
    };
    match t {
        FieldType::Integer => "bigint".into(),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            format!("numeric({},{})", f.precision(), f.scale())
        }
        FieldType::Boolean => "boolean".into(),
        FieldType::Date => "date".into(),
        FieldType::Datetime => "timestamptz".into(),
        FieldType::MultiPicklist => "text[]".into(),
        FieldType::Reference => "uuid".into(),
        FieldType::Json => "jsonb".into(),
        _ => "text".into(),
    }
}

fn column_def(f: &FieldDef, new_table: bool) -> String {
    let not_null = if new_table && f.required && f.kind != FieldType::Autonumber {
        " NOT NULL"
    } else {
        ""
    };
    format!("{} {}{}", ident(&f.name), column_type(f), not_null)
}

fn index_sql(def: &ObjectDef, f: &FieldDef) -> Vec<String> {
    let mut out = Vec::new();
    let t = table(def);
    if f.unique {
        out.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE (tenant_id, {})",
            ident(&format!("{}_{}_key", def.name, f.name)),
            ident(&f.name)
        ));
    } else if f.indexed || f.kind == FieldType::Reference {
        out.push(format!(
            "CREATE INDEX {} ON {t} (tenant_id, {})",
            ident(&format!("{}_{}_idx", def.name, f.name)),
            ident(&f.name)
        ));
    }
    out
}

fn fk_sql(def: &ObjectDef, f: &FieldDef, defs: &BTreeMap<&str, &ObjectDef>) -> Option<String> {
    let target = defs.get(f.target.as_deref()?)?;
    let on_delete = match f.on_delete.unwrap_or_default() {
        OnDelete::SetNull => format!("SET NULL ({})", ident(&f.name)),
        other => other.sql().to_string(),
    };
    // (tenant_id, ref) -> (tenant_id, id): a reference can only point into its own
    // tenant, even though foreign key checks bypass row-level security.
    Some(format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY (tenant_id, {}) REFERENCES {} (tenant_id, id) ON DELETE {on_delete}",
        table(def),
        ident(&format!("{}_{}_fkey", def.name, f.name)),
        ident(&f.name),
        table(target)
    ))
}

fn create_table_sql(def: &ObjectDef, parent: Option<&ObjectDef>) -> Vec<String> {
    let t = table(def);
    let mut cols = vec![
        "id uuid PRIMARY KEY".to_string(),
        "tenant_id uuid NOT NULL".into(),
        "version bigint NOT NULL DEFAULT 1".into(),
        "created_at timestamptz NOT NULL DEFAULT now()".into(),
        "updated_at timestamptz NOT NULL DEFAULT now()".into(),
        "created_by text NOT NULL".into(),
        "updated_by text NOT NULL".into(),
    ];
    if parent.is_some() {
        cols.push("parent_id uuid NOT NULL".into());
        cols.push("position integer NOT NULL".into());
    }
    cols.extend(
        def.fields
            .iter()
            .filter(|f| f.has_column())
            .map(|f| column_def(f, true)),
    );
    cols.push(format!(
        "CONSTRAINT {} UNIQUE (tenant_id, id)",
        ident(&format!("{}_tenant_id_key", def.name))
    ));
    let mut out = vec![
        format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&def.service)),
        format!("GRANT USAGE ON SCHEMA {} TO platform_app", ident(&def.service)),
        format!("CREATE TABLE {t} (\n    {}\n)", cols.join(",\n    ")),
        format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY"),
        format!(
            "CREATE POLICY tenant_isolation ON {t} USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)"
        ),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO platform_app"),
        // The default list order and keyset pagination.
        format!("CREATE INDEX {} ON {t} (tenant_id, created_at, id)", ident(&format!("{}_created_idx", def.name))),
    ];
    if let Some(p) = parent {
        out.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY (tenant_id, parent_id) REFERENCES {} (tenant_id, id) ON DELETE CASCADE",
            ident(&format!("{}_parent_fkey", def.name)),
            table(p)
        ));
        out.push(format!(
            "CREATE INDEX {} ON {t} (parent_id, position)",
            ident(&format!("{}_parent_idx", def.name))
        ));
    }
    for f in def.fields.iter().filter(|f| f.has_column()) {
        out.extend(index_sql(def, f));
    }
    out
}

/// One step of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub object: String,
    pub description: String,
    pub destructive: bool,
    pub sql: Vec<String>,
}

/// The changes that bring tables built from `old` to `new` (`old` empty: create all).
pub fn plan(old: &[ObjectDef], new: &Catalog) -> Vec<Change> {
    let old_by: BTreeMap<&str, &ObjectDef> = old.iter().map(|d| (d.name.as_str(), d)).collect();
    let new_defs = new.defs();
    let new_by: BTreeMap<&str, &ObjectDef> =
        new_defs.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut changes = Vec::new();
    let mut fks = Vec::new();
    for obj in new.dependency_order() {
        let def = &obj.def;
        let parent = obj.parent.as_deref().and_then(|p| new_by.get(p).copied());
        match old_by.get(def.name.as_str()) {
            None => {
                changes.push(Change {
                    object: def.name.clone(),
                    description: format!("create table {}", table(def)),
                    destructive: false,
                    sql: create_table_sql(def, parent),
                });
                for f in def.fields.iter().filter(|f| f.kind == FieldType::Reference) {
                    fks.extend(fk_sql(def, f, &new_by).map(|sql| Change {
                        object: def.name.clone(),
                        description: format!("reference {}.{}", def.name, f.name),
                        destructive: false,
                        sql: vec![sql],
                    }));
                }
            }
            Some(old_def) => {
                if old_def.service != def.service {
                    changes.push(Change {
                        object: def.name.clone(),
                        description: format!(
                            "move {} from service {} to {}",
                            def.name, old_def.service, def.service
                        ),
                        destructive: true,
                        sql: vec![format!(
                            "ALTER TABLE {} SET SCHEMA {}",
                            table(old_def),
                            ident(&def.service)
                        )],
                    });
                }
                field_changes(old_def, def, &new_by, &mut changes, &mut fks);
            }
        }
    }
    for old_def in old {
        if !new_by.contains_key(old_def.name.as_str()) {
            changes.push(Change {
                object: old_def.name.clone(),
                description: format!("drop table {}", table(old_def)),
                destructive: true,
                sql: vec![format!("DROP TABLE {} CASCADE", table(old_def))],
            });
        }
    }
    changes.extend(fks);
    changes
}

fn field_changes(
    old: &ObjectDef,
    new: &ObjectDef,
    defs: &BTreeMap<&str, &ObjectDef>,
    changes: &mut Vec<Change>,
    fks: &mut Vec<Change>,
) {
    let t = table(new);
    let old_fields: BTreeMap<&str, &FieldDef> =
        old.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    for f in new.fields.iter().filter(|f| f.has_column()) {
        match old_fields.get(f.name.as_str()) {
            None => {
                let mut sql = vec![format!(
                    "ALTER TABLE {t} ADD COLUMN {}",
                    column_def(f, false)
                )];
                sql.extend(index_sql(new, f));
                changes.push(Change {
                    object: new.name.clone(),
                    description: format!("add column {}.{}", new.name, f.name),
                    destructive: false,
                    sql,
                });
                if f.kind == FieldType::Reference {
                    fks.extend(fk_sql(new, f, defs).map(|sql| Change {
                        object: new.name.clone(),
                        description: format!("reference {}.{}", new.name, f.name),
                        destructive: false,
                        sql: vec![sql],
                    }));
                }
            }
            Some(of) => {
                if column_type(of) != column_type(f) || !of.has_column() {
                    changes.push(Change {
                        object: new.name.clone(),
                        description: format!(
                            "change type of {}.{} from {} to {}",
                            new.name,
                            f.name,
                            column_type(of),
                            column_type(f)
                        ),
                        destructive: true,
                        sql: vec![format!(
                            "ALTER TABLE {t} ALTER COLUMN {} TYPE {} USING {}::{}",
                            ident(&f.name),
                            column_type(f),
                            ident(&f.name),
                            column_type(f)
                        )],
                    });
                }
                let was_indexed = of.unique || of.indexed || of.kind == FieldType::Reference;
                let is_indexed = f.unique || f.indexed || f.kind == FieldType::Reference;
                if (of.unique, was_indexed) != (f.unique, is_indexed) {
                    let mut sql = vec![
                        format!(
                            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                            ident(&format!("{}_{}_key", new.name, f.name))
                        ),
                        format!(
                            "DROP INDEX IF EXISTS {}.{}",
                            ident(&new.service),
                            ident(&format!("{}_{}_idx", new.name, f.name))
                        ),
                    ];
                    sql.extend(index_sql(new, f));
                    changes.push(Change {
                        object: new.name.clone(),
                        description: format!("re-index {}.{}", new.name, f.name),
                        destructive: false,
                        sql,
                    });
                }
            }
        }
    }
    for of in old.fields.iter().filter(|f| f.has_column()) {
        if !new
            .fields
            .iter()
            .any(|f| f.name == of.name && f.has_column())
        {
            changes.push(Change {
                object: new.name.clone(),
                description: format!("drop column {}.{}", new.name, of.name),
                destructive: true,
                sql: vec![format!("ALTER TABLE {t} DROP COLUMN {}", ident(&of.name))],
            });
        }
    }
}

/// The outcome of bringing the database to the current definitions.
#[derive(Debug)]
pub struct Applied {
    pub version: i64,
    pub changes: Vec<Change>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("destructive changes need --allow-destructive: {}", .0.iter().map(|c| c.description.clone()).collect::<Vec<_>>().join("; "))]
    Destructive(Vec<Change>),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored metadata is unreadable: {0}")]
    Stored(String),
}

/// Brings the tables to `catalog` and records a new metadata version when anything
/// changed. Serialised across processes by an advisory lock; all in one transaction.
pub async fn apply(
    admin: &PgPool,
    catalog: &Catalog,
    source: &str,
    allow_destructive: bool,
) -> Result<Applied, ApplyError> {
    let mut tx = admin.begin().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7261001)").await?;
    let latest: Option<(i64, String, Value)> =
        sqlx::query_as("SELECT version, hash, definitions FROM engine.metadata_versions ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (prev_version, old_defs) = match &latest {
        Some((v, hash, _)) if *hash == catalog.hash => {
            tx.commit().await?;
            return Ok(Applied {
                version: *v,
                changes: Vec::new(),
            });
        }
        Some((v, _, defs)) => (
            *v,
            serde_json::from_value::<Vec<ObjectDef>>(defs.clone())
                .map_err(|e| ApplyError::Stored(e.to_string()))?,
        ),
        None => (0, Vec::new()),
    };
    let changes = plan(&old_defs, catalog);
    let destructive: Vec<Change> = changes.iter().filter(|c| c.destructive).cloned().collect();
    if !destructive.is_empty() && !allow_destructive {
        return Err(ApplyError::Destructive(destructive));
    }
    let mut ddl = Vec::new();
    for c in &changes {
        for s in &c.sql {
            tx.execute(s.as_str()).await?;
            ddl.push(format!("{s};"));
        }
    }
    let version = prev_version + 1;
    sqlx::query(
        "INSERT INTO engine.metadata_versions (version, hash, definitions, ddl, source, applied_by) VALUES ($1, $2, $3, $4, $5, current_user)",
    )
    .bind(version)
    .bind(&catalog.hash)
    .bind(serde_json::to_value(catalog.defs()).unwrap_or_default())
    .bind(ddl.join("\n"))
    .bind(source)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Applied { version, changes })
}

//! Generated tables: the DDL for a catalog, and the plan that brings the database from
//! the metadata version it was built from to the current definitions.
//!
//! Identifiers come only from checked definitions (lower snake case, at most 40
//! characters) and are always quoted. Additive changes (new objects, fields, indexes)
//! apply in one transaction; destructive ones (dropping or retyping a column, dropping
//! a table) are refused unless explicitly allowed.

use platform_metadata::{Catalog, FieldDef, FieldType, ObjectDef, OnDelete};
use serde_json::Value;
use std::collections::BTreeMap;

/// The name of a constraint or index of `object`'s table: `<object>_<field>_<suffix>`,
/// shortened with a hash when longer than PostgreSQL's 63 bytes (which it would cut).
pub fn constraint_name(object: &str, field: &str, suffix: &str) -> String {
    let name = format!("{object}_{field}_{suffix}");
    if name.len() <= 63 {
        return name;
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    format!(
        "{}_{}_{suffix}",
        &name[..63 - suffix.len() - 10],
        &hash[..8]
    )
}

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
            ident(&constraint_name(&def.name, &f.name, "key")),
            ident(&f.name)
        ));
    } else if f.indexed || f.kind == FieldType::Reference {
        out.push(format!(
            "CREATE INDEX {} ON {t} (tenant_id, {}, id)",
            ident(&constraint_name(&def.name, &f.name, "idx")),
            ident(&f.name)
        ));
    }
    out
}

/// Index statements for a column of an existing table: plain indexes are deferred and
/// built concurrently; unique constraints stay in the transaction (they are checked
/// against existing rows first).
fn online_index_sql(def: &ObjectDef, f: &FieldDef) -> (Vec<String>, Vec<String>) {
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for s in index_sql(def, f) {
        match s.strip_prefix("CREATE INDEX ") {
            Some(rest) => later.push(format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS {rest}")),
            None => now.push(s),
        }
    }
    (now, later)
}

/// Rebuilding a field's index or unique constraint: what to drop first, then
/// [`online_index_sql`]'s statements for now and for after commit.
fn reindex_sql(def: &ObjectDef, f: &FieldDef) -> (Vec<String>, Vec<String>, Vec<String>) {
    let t = table(def);
    let drop = vec![
        format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
            ident(&constraint_name(&def.name, &f.name, "key"))
        ),
        format!(
            "DROP INDEX IF EXISTS {}.{}",
            ident(&def.service),
            ident(&constraint_name(&def.name, &f.name, "idx"))
        ),
    ];
    let (now, later) = online_index_sql(def, f);
    (drop, now, later)
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
        ident(&constraint_name(&def.name, &f.name, "fkey")),
        ident(&f.name),
        table(target)
    ))
}

fn create_table_sql(def: &ObjectDef, parent: Option<&ObjectDef>) -> Vec<String> {
    let t = table(def);
    let mut cols = vec![
        "id uuid NOT NULL".to_string(),
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
    } else {
        // Tenants' custom fields (engine.tenant_fields), keyed by field name.
        cols.push("custom jsonb NOT NULL DEFAULT '{}'".into());
    }
    cols.extend(
        def.fields
            .iter()
            .filter(|f| f.has_column())
            .map(|f| column_def(f, true)),
    );
    // The key is (tenant_id, id): ids are per tenant, so a client-chosen id never
    // collides with (or reveals) another tenant's record.
    cols.push(format!(
        "CONSTRAINT {} PRIMARY KEY (tenant_id, id)",
        ident(&constraint_name(&def.name, "tenant", "pkey"))
    ));
    let mut out = vec![
        format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&def.service)),
        format!("GRANT USAGE ON SCHEMA {} TO platform_app", ident(&def.service)),
        format!("CREATE TABLE {t} (\n    {}\n)", cols.join(",\n    ")),
        format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"),
        format!(
            "CREATE POLICY tenant_isolation ON {t} USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)"
        ),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO platform_app"),
        // The default list order and keyset pagination.
        format!("CREATE INDEX {} ON {t} (tenant_id, created_at, id)", ident(&constraint_name(&def.name, "created", "idx"))),
    ];
    if let Some(p) = parent {
        out.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY (tenant_id, parent_id) REFERENCES {} (tenant_id, id) ON DELETE CASCADE",
            ident(&constraint_name(&def.name, "parent", "fkey")),
            table(p)
        ));
        out.push(format!(
            "CREATE INDEX {} ON {t} (parent_id, position)",
            ident(&constraint_name(&def.name, "parent", "idx"))
        ));
    }
    for f in def.fields.iter().filter(|f| f.has_column()) {
        out.extend(index_sql(def, f));
    }
    out
}

/// A condition existing rows must meet before a change applies: `bad` is an SQL
/// predicate on the table (before any DDL of the plan) selecting the rows that would
/// break or not convert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// `object.field`
    pub field: String,
    /// `required`, `max_length`, `unique`, `options`, `minimum`, `maximum`, `pattern`, `type`
    pub rule: String,
    pub message: String,
    #[serde(skip)]
    pub table: String,
    #[serde(skip)]
    pub column: String,
    #[serde(skip)]
    pub bad: String,
    /// Count duplicate groups instead of rows (unique).
    #[serde(skip)]
    pub duplicates: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub object: String,
    pub description: String,
    pub destructive: bool,
    pub sql: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Set when the change cannot be made at all (e.g. an unsupported type change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// A column type change done online (see [`Conversion`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convert: Option<Conversion>,
    /// Run after the transaction commits, without blocking writes: indexes on existing
    /// tables are built CONCURRENTLY, new foreign keys validated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
}

impl Change {
    fn new(object: &str, description: String, destructive: bool, sql: Vec<String>) -> Change {
        Change {
            object: object.to_string(),
            description,
            destructive,
            sql,
            checks: Vec::new(),
            refused: None,
            convert: None,
            deferred: Vec::new(),
        }
    }
}

/// A column's type change without a long lock: before the change's transaction, a
/// shadow column of the new type is added with a trigger that keeps it converted on
/// every write, and filled in short batches; the transaction then only swaps names
/// (the old column is kept as `_dropped_v<N>_<field>`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conversion {
    pub table: String,
    pub shadow: String,
    pub column_type: String,
    /// The conversion of a row's value, in terms of the source column.
    pub using_row: String,
    /// The same on `NEW` in the trigger.
    pub using_new: String,
    pub function: String,
    pub trigger: String,
}

/// A field renamed by the caller (the Metadata API), so its column is renamed rather
/// than dropped and added.
#[derive(Debug, Clone)]
pub struct Rename {
    pub object: String,
    pub from: String,
    pub to: String,
}

/// The changes that bring tables built from `old` to `new` (`old` empty: create all).
/// `version` is the metadata version being made: dropped columns and tables are
/// renamed with it (kept, recoverable) rather than dropped.
pub fn plan(old: &[ObjectDef], new: &Catalog, renames: &[Rename], version: i64) -> Vec<Change> {
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
                changes.push(Change::new(
                    &def.name,
                    format!("create table {}", table(def)),
                    false,
                    create_table_sql(def, parent),
                ));
                for f in def.fields.iter().filter(|f| f.kind == FieldType::Reference) {
                    fks.extend(fk_sql(def, f, &new_by).map(|sql| {
                        Change::new(
                            &def.name,
                            format!("reference {}.{}", def.name, f.name),
                            false,
                            vec![sql],
                        )
                    }));
                }
            }
            Some(old_def) => {
                if old_def.service != def.service {
                    let mut c = Change::new(
                        &def.name,
                        format!(
                            "move {} from service {} to {}",
                            def.name, old_def.service, def.service
                        ),
                        true,
                        vec![],
                    );
                    c.refused = Some("an object cannot move to another service".into());
                    changes.push(c);
                }
                let obj_renames: Vec<&Rename> =
                    renames.iter().filter(|r| r.object == def.name).collect();
                field_changes(
                    old_def,
                    def,
                    &new_by,
                    &obj_renames,
                    version,
                    &mut changes,
                    &mut fks,
                );
            }
        }
    }
    for old_def in old {
        if !new_by.contains_key(old_def.name.as_str()) {
            changes.push(Change::new(
                &old_def.name,
                format!(
                    "drop table {} (kept as _dropped_v{version}_{})",
                    table(old_def),
                    old_def.name
                ),
                true,
                vec![format!(
                    "ALTER TABLE {} RENAME TO {}",
                    table(old_def),
                    ident(&format!("_dropped_v{version}_{}", old_def.name))
                )],
            ));
        }
    }
    changes.extend(fks);
    changes
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How a column of `old`'s type becomes `new`'s, and the predicate of rows that would
/// not convert. None: the conversion is not supported.
fn conversion(old: &FieldDef, new: &FieldDef, c: &str) -> Option<(String, Option<String>)> {
    let (ot, nt) = (column_type(old), column_type(new));
    let num_re = r"'^\s*[-+]?[0-9]+(\.[0-9]+)?\s*$'";
    let int_re = r"'^\s*[-+]?[0-9]+\s*$'";
    let limit = |p: u32, s: u32| format!("1e{}", p - s);
    Some(match (ot.as_str(), nt.as_str()) {
        (_, "text") if ot == "text[]" => (format!("array_to_string({c}, ',')"), None),
        (_, "text") if ot == "jsonb" => (format!("{c} #>> '{{}}'"), None),
        (_, "text") => (format!("{c}::text"), None),
        ("text", "bigint") => (format!("trim({c})::bigint"), Some(format!("{c} !~ {int_re}"))),
        ("boolean", "bigint") => (format!("{c}::int"), None),
        (o, "bigint") if o.starts_with("numeric") => (format!("{c}::bigint"), Some(format!("{c} <> trunc({c})"))),
        ("text", n) if n.starts_with("numeric") => (
            format!("trim({c})::{n}"),
            Some(format!("CASE WHEN {c} ~ {num_re} THEN abs(trim({c})::numeric) >= {} OR trim({c})::numeric <> round(trim({c})::numeric, {}) ELSE true END", limit(new.precision(), new.scale()), new.scale())),
        ),
        (o, n) if (o == "bigint" || o.starts_with("numeric")) && n.starts_with("numeric") => (
            format!("{c}::{n}"),
            Some(format!("abs({c}) >= {} OR {c} <> round({c}, {})", limit(new.precision(), new.scale()), new.scale())),
        ),
        ("text", "boolean") => (
            format!("lower(trim({c}))::boolean"),
            Some(format!("lower(trim({c})) NOT IN ('true','false','t','f','yes','no','y','n','on','off','1','0')")),
        ),
        ("bigint", "boolean") => (format!("{c} <> 0"), None),
        ("text", "date") => (format!("{c}::date"), Some(format!("{c} !~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$'"))),
        ("timestamptz", "date") => (format!("({c} AT TIME ZONE 'UTC')::date"), None),
        ("date", "timestamptz") => (format!("({c}::timestamp AT TIME ZONE 'UTC')"), None),
        ("text", "timestamptz") => (
            format!("{c}::timestamptz"),
            Some(format!("{c} !~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([T ][0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}(\\.[0-9]+)?)?(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)?)?$'")),
        ),
        ("text", "text[]") => (format!("CASE WHEN {c} IS NULL THEN NULL ELSE ARRAY[{c}] END"), None),
        (_, "jsonb") => (format!("to_jsonb({c})"), None),
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn field_changes(
    old: &ObjectDef,
    new: &ObjectDef,
    defs: &BTreeMap<&str, &ObjectDef>,
    renames: &[&Rename],
    version: i64,
    changes: &mut Vec<Change>,
    fks: &mut Vec<Change>,
) {
    let t = table(new);
    let old_fields: BTreeMap<&str, &FieldDef> =
        old.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let renamed_from = |name: &str| {
        renames
            .iter()
            .find(|r| r.to == name)
            .map(|r| r.from.as_str())
    };
    let mut kept_old: Vec<&str> = Vec::new();
    for f in new.fields.iter().filter(|f| f.has_column()) {
        let old_name = renamed_from(&f.name).unwrap_or(&f.name);
        match old_fields.get(old_name).filter(|of| of.has_column()) {
            None => {
                let mut sql = vec![format!(
                    "ALTER TABLE {t} ADD COLUMN {}",
                    column_def(f, false)
                )];
                let (now, later) = online_index_sql(new, f);
                sql.extend(now);
                let mut c = Change::new(
                    &new.name,
                    format!("add column {}.{}", new.name, f.name),
                    false,
                    sql,
                );
                c.deferred = later;
                changes.push(c);
                if f.kind == FieldType::Reference {
                    // The new column is empty: nothing to validate while holding the lock.
                    fks.extend(fk_sql(new, f, defs).map(|sql| {
                        let name = ident(&constraint_name(&new.name, &f.name, "fkey"));
                        let mut c = Change::new(
                            &new.name,
                            format!("reference {}.{}", new.name, f.name),
                            false,
                            vec![format!("{sql} NOT VALID")],
                        );
                        c.deferred
                            .push(format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"));
                        c
                    }));
                }
            }
            Some(of) => {
                kept_old.push(old_name);
                let col = ident(old_name);
                let at = format!("{}.{}", new.name, f.name);
                let check = |rule: &str, message: String, bad: String| Check {
                    field: at.clone(),
                    rule: rule.into(),
                    message,
                    table: t.clone(),
                    column: col.clone(),
                    bad,
                    duplicates: false,
                };
                let mut c = Change::new(&new.name, format!("change {at}"), false, Vec::new());
                if old_name != f.name {
                    c.description = format!("rename {}.{old_name} to {}", new.name, f.name);
                    c.sql.push(format!(
                        "ALTER TABLE {t} RENAME COLUMN {col} TO {}",
                        ident(&f.name)
                    ));
                    for (suffix, is_constraint) in [("key", true), ("idx", false), ("fkey", true)] {
                        let from = ident(&constraint_name(&new.name, old_name, suffix));
                        let to = ident(&constraint_name(&new.name, &f.name, suffix));
                        let exists = match suffix {
                            "key" => of.unique,
                            "idx" => !of.unique && (of.indexed || of.kind == FieldType::Reference),
                            _ => of.kind == FieldType::Reference,
                        };
                        if exists {
                            c.sql.push(if is_constraint {
                                format!("ALTER TABLE {t} RENAME CONSTRAINT {from} TO {to}")
                            } else {
                                format!("ALTER INDEX {}.{from} RENAME TO {to}", ident(&new.service))
                            });
                        }
                    }
                }
                let new_col = ident(&f.name);
                let mut converted = false;
                if column_type(of) != column_type(f) {
                    c.description = format!(
                        "{}; convert {at} from {} to {}",
                        c.description,
                        column_type(of),
                        column_type(f)
                    );
                    if f.kind == FieldType::Reference || of.kind == FieldType::Reference {
                        c.refused = Some(format!("{at}: a reference cannot be converted to or from another type; add a new field"));
                    } else {
                        match conversion(of, f, &col) {
                            None => {
                                c.refused = Some(format!(
                                    "{at}: {} cannot be converted to {}",
                                    column_type(of),
                                    column_type(f)
                                ))
                            }
                            Some((using, bad)) => {
                                // Online: a shadow column kept in step by a trigger and
                                // filled in batches before this transaction (see
                                // evolve::convert_online); here only catalog renames run.
                                let shadow = ident(&format!("__conv_{}", f.name));
                                let name = constraint_name(&new.name, &f.name, "conv");
                                let function = format!("engine.{}", ident(&name));
                                let trigger = ident(&name);
                                c.convert = Some(Conversion {
                                    table: t.clone(),
                                    shadow: shadow.clone(),
                                    column_type: column_type(f),
                                    using_new: using.replace(&col, &format!("NEW.{col}")),
                                    using_row: using.clone(),
                                    function: function.clone(),
                                    trigger: trigger.clone(),
                                });
                                c.sql
                                    .insert(0, format!("DROP TRIGGER IF EXISTS {trigger} ON {t}"));
                                c.sql
                                    .insert(1, format!("DROP FUNCTION IF EXISTS {function}()"));
                                let kept = ident(&format!("_dropped_v{version}_{}", f.name));
                                let (drop, now, later) = reindex_sql(new, f);
                                c.sql.extend(drop);
                                c.sql.push(format!(
                                    "ALTER TABLE {t} ALTER COLUMN {new_col} DROP NOT NULL"
                                ));
                                c.sql.push(format!(
                                    "ALTER TABLE {t} RENAME COLUMN {new_col} TO {kept}"
                                ));
                                c.sql.push(format!(
                                    "ALTER TABLE {t} RENAME COLUMN {shadow} TO {new_col}"
                                ));
                                c.sql.extend(now);
                                c.deferred.extend(later);
                                converted = true;
                                if let Some(bad) = bad {
                                    c.checks.push(check(
                                        "type",
                                        format!("values that do not convert to {}", column_type(f)),
                                        format!("{col} IS NOT NULL AND ({bad})"),
                                    ));
                                }
                            }
                        }
                    }
                }
                if f.required && !of.required && f.kind != FieldType::Autonumber {
                    c.checks.push(check(
                        "required",
                        "rows without a value".into(),
                        format!("{col} IS NULL"),
                    ));
                }
                if !f.required && of.required {
                    c.sql.push(format!(
                        "ALTER TABLE {t} ALTER COLUMN {new_col} DROP NOT NULL"
                    ));
                }
                if let Some(n) = f.max_length {
                    if of.max_length.is_none_or(|o| o > n) {
                        c.checks.push(check(
                            "max_length",
                            format!("values longer than {n} characters"),
                            format!("char_length({col}::text) > {n}"),
                        ));
                    }
                }
                if let (Some(p), true) = (&f.pattern, f.pattern != of.pattern) {
                    c.checks.push(check(
                        "pattern",
                        format!("values that do not match {p}"),
                        format!("{col}::text !~ {}", quote_literal(p)),
                    ));
                }
                if matches!(f.kind, FieldType::Picklist | FieldType::MultiPicklist)
                    && of.options.is_some()
                {
                    let old_vals: Vec<&str> = of.option_values().collect();
                    let removed: Vec<&str> = old_vals
                        .iter()
                        .copied()
                        .filter(|v| !f.option_values().any(|n| n == *v))
                        .collect();
                    if !removed.is_empty() {
                        let list = removed
                            .iter()
                            .map(|v| quote_literal(v))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let bad = if f.kind == FieldType::Picklist {
                            format!("{col} IN ({list})")
                        } else {
                            format!("{col} && ARRAY[{list}]::text[]")
                        };
                        c.checks.push(check(
                            "options",
                            format!("rows using removed option(s) {}", removed.join(", ")),
                            bad,
                        ));
                    }
                }
                for (bound, rule, op) in [(&f.min, "minimum", "<"), (&f.max, "maximum", ">")] {
                    let old_bound = if rule == "minimum" { &of.min } else { &of.max };
                    if let (Some(b), true) = (bound, bound != old_bound) {
                        let lit = match b {
                            Value::Number(n) => n.to_string(),
                            Value::String(s) => quote_literal(s),
                            _ => continue,
                        };
                        c.checks.push(check(
                            rule,
                            format!("values {op} {b}"),
                            format!("{col} {op} {lit}"),
                        ));
                    }
                }
                let was_indexed = of.unique || of.indexed || of.kind == FieldType::Reference;
                let is_indexed = f.unique || f.indexed || f.kind == FieldType::Reference;
                if !converted && (of.unique, was_indexed) != (f.unique, is_indexed) {
                    if f.unique && !of.unique {
                        let mut ck = check(
                            "unique",
                            "values used more than once in a tenant".into(),
                            format!("{col} IS NOT NULL"),
                        );
                        ck.duplicates = true;
                        c.checks.push(ck);
                    }
                    let (drop, now, later) = reindex_sql(new, f);
                    c.sql.extend(drop);
                    c.sql.extend(now);
                    c.deferred.extend(later);
                }
                if !c.sql.is_empty() || !c.checks.is_empty() || c.refused.is_some() {
                    changes.push(c);
                }
            }
        }
    }
    for of in old.fields.iter().filter(|f| f.has_column()) {
        if !kept_old.contains(&of.name.as_str()) {
            let kept = format!("_dropped_v{version}_{}", of.name);
            changes.push(Change::new(
                &new.name,
                format!("drop column {}.{} (kept as {kept})", new.name, of.name),
                true,
                vec![
                    format!(
                        "ALTER TABLE {t} ALTER COLUMN {} DROP NOT NULL",
                        ident(&of.name)
                    ),
                    format!(
                        "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                        ident(&constraint_name(&new.name, &of.name, "key"))
                    ),
                    format!(
                        "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                        ident(&constraint_name(&new.name, &of.name, "fkey"))
                    ),
                    format!(
                        "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                        ident(&of.name),
                        ident(&kept)
                    ),
                ],
            ));
        }
    }
}

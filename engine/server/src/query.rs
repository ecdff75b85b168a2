//! List queries: `filter=field:op:value`, `sort=-a,b`, `limit`, `cursor`, `fields`,
//! `expand`, parsed against the object's definition into SQL with bound values.
//!
//! Pagination is keyset: the cursor carries the sort values of the last row (and its
//! id, the final tie-breaker), so rows inserted between pages never make a page skip or
//! repeat a row. NULL sorts as the largest value (last ascending, first descending, as
//! PostgreSQL's indexes order it), and the final tie-breaker `id` follows the last key's
//! direction, so a sort on an indexed field reads its `(tenant_id, field, id)` index.

use crate::ddl::{ident, table};
use crate::error::{ApiError, ApiResult};
use crate::records::select_list;
use crate::sqlvalue::{self, Bind};
use base64::Engine;
use platform_metadata::{FieldDef, FieldType, Issue, Object, Record};
use serde_json::{json, Value};
use std::sync::LazyLock;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 200;

/// System columns that can be filtered and sorted on, typed like fields.
static SYSTEM: LazyLock<Vec<FieldDef>> = LazyLock::new(|| {
    [
        ("id", "reference"),
        ("version", "integer"),
        ("created_at", "datetime"),
        ("updated_at", "datetime"),
        ("created_by", "text"),
        ("updated_by", "text"),
    ]
    .iter()
    .filter_map(|(n, t)| serde_json::from_value(json!({"name": n, "type": t})).ok())
    .collect()
});

fn field<'a>(obj: &'a Object, name: &str) -> Option<&'a FieldDef> {
    obj.field(name)
        .filter(|f| f.is_stored())
        .or_else(|| SYSTEM.iter().find(|f| f.name == name))
}

/// The SQL expression of a stored field: its column, or for a tenant's custom field its
/// value in the `custom` JSONB column, cast to the field's type.
pub fn column_expr(f: &FieldDef) -> String {
    if !f.custom {
        return ident(&f.name);
    }
    // Custom field names are checked identifiers ([a-z0-9_]), safe in a literal.
    let text = format!("(custom->>'{}')", f.name);
    match sqlvalue::storage(f) {
        FieldType::Integer => format!("({text}::bigint)"),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => format!("({text}::numeric)"),
        FieldType::Boolean => format!("({text}::boolean)"),
        FieldType::Date => format!("({text}::date)"),
        FieldType::Datetime => format!("({text}::timestamptz)"),
        FieldType::MultiPicklist | FieldType::Json => format!("(custom->'{}')", f.name),
        _ => text,
    }
}

fn bad(param: &str, value: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", "the query string is not valid")
        .with_details(vec![Issue::new(param, "query", message, json!(value))])
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: String,
    pub desc: bool,
}

#[derive(Debug, Default)]
pub struct ListQuery {
    pub conditions: Vec<String>,
    pub binds: Vec<Bind>,
    pub sort: Vec<SortKey>,
    pub limit: i64,
    pub fields: Option<Vec<String>>,
    pub expand: Vec<String>,
    /// The direction of the final tie-breaker `id`, when the request named it.
    pub id_explicit: Option<bool>,
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl ListQuery {
    fn param(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len() + 1) // $1 is the tenant
    }

    /// Parses the query string pairs of a list request.
    pub fn parse(obj: &Object, pairs: &[(String, String)]) -> ApiResult<ListQuery> {
        let mut q = ListQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        let mut sort_param = None;
        let mut cursor = None;
        for (k, v) in pairs {
            match k.as_str() {
                "filter" => q.add_filter(obj, v)?,
                "sort" => sort_param = Some(v.clone()),
                "limit" => {
                    q.limit = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            bad(
                                "limit",
                                v,
                                format!("must be an integer from 1 to {MAX_LIMIT}"),
                            )
                        })?
                        .min(MAX_LIMIT)
                }
                "cursor" => cursor = Some(v.clone()),
                "fields" => {
                    let names: Vec<String> = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    for n in &names {
                        if obj.field(n).is_none() && field(obj, n).is_none() {
                            return Err(bad(
                                "fields",
                                v,
                                format!("`{}` has no field `{n}`", obj.name()),
                            ));
                        }
                    }
                    q.fields = Some(names);
                }
                "expand" => {
                    for n in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        match obj.field(n) {
                            Some(f)
                                if matches!(f.kind, FieldType::Reference | FieldType::Children) =>
                            {
                                q.expand.push(n.to_string())
                            }
                            _ => {
                                return Err(bad(
                                    "expand",
                                    v,
                                    format!(
                                        "`{n}` is not a reference or children field of `{}`",
                                        obj.name()
                                    ),
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(bad(
                        other,
                        v,
                        "unknown query parameter (use filter, sort, limit, cursor, fields, expand)",
                    ))
                }
            }
        }
        let sort_text = sort_param
            .or_else(|| {
                obj.def
                    .layouts
                    .list
                    .as_ref()
                    .and_then(|l| l.default_sort.clone())
            })
            .unwrap_or_else(|| "created_at".into());
        for key in sort_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (desc, name) = match key.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, key.strip_prefix('+').unwrap_or(key)),
            };
            let f = field(obj, name).ok_or_else(|| {
                bad(
                    "sort",
                    &sort_text,
                    format!("`{}` has no sortable field `{name}`", obj.name()),
                )
            })?;
            if matches!(
                f.kind,
                FieldType::Json | FieldType::MultiPicklist | FieldType::LongText
            ) {
                return Err(bad(
                    "sort",
                    &sort_text,
                    format!("`{name}` ({}) cannot be sorted on", f.kind.as_str()),
                ));
            }
            if name == "id" {
                // id is always the last key; a direction for it sets the tie-breaker's.
                q.id_explicit = Some(desc);
                break;
            } else {
                q.sort.push(SortKey {
                    field: name.to_string(),
                    desc,
                });
            }
        }
        if let Some(c) = cursor {
            q.add_cursor(obj, &c)?;
        }
        Ok(q)
    }

    fn add_filter(&mut self, obj: &Object, spec: &str) -> ApiResult<()> {
        let mut parts = spec.splitn(3, ':');
        let (name, op, value) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next(),
        );
        let f = field(obj, name).ok_or_else(|| {
            bad(
                "filter",
                spec,
                format!("`{}` has no filterable field `{name}`", obj.name()),
            )
        })?;
        let col = column_expr(f);
        if f.custom
            && matches!(f.kind, FieldType::MultiPicklist | FieldType::Json)
            && !(f.kind == FieldType::MultiPicklist && op == "contains")
            && op != "is_null"
        {
            return Err(bad(
                "filter",
                spec,
                format!("`{name}` supports contains and is_null"),
            ));
        }
        let value = value.unwrap_or_default();
        let scalar = |v: &str| sqlvalue::parse_scalar(f, v).map_err(|m| bad("filter", spec, m));
        let textual = sqlvalue::storage(f).is_textual();
        let listy = matches!(f.kind, FieldType::Json | FieldType::MultiPicklist);
        if (op == "in" && listy) || (op == "between" && (listy || f.kind == FieldType::Boolean)) {
            return Err(bad(
                "filter",
                spec,
                format!("`{op}` does not apply to a {} field", f.kind.as_str()),
            ));
        }
        let cond = match op {
            "eq" | "ne" | "lt" | "lte" | "gt" | "gte" => {
                if f.kind == FieldType::Json || (f.kind == FieldType::MultiPicklist && op != "eq" && op != "ne") {
                    return Err(bad("filter", spec, format!("`{op}` does not apply to a {} field", f.kind.as_str())));
                }
                let b = if f.kind == FieldType::MultiPicklist {
                    Bind::TextArr(Some(value.split(',').map(String::from).collect()))
                } else {
                    scalar(value)?
                };
                let p = self.param(b);
                let sql_op = match op {
                    "eq" => "=",
                    "ne" => "IS DISTINCT FROM",
                    "lt" => "<",
                    "lte" => "<=",
                    "gt" => ">",
                    _ => ">=",
                };
                format!("{col} {sql_op} {p}")
            }
            "in" => {
                let items = value.split(',').map(scalar).collect::<ApiResult<Vec<_>>>()?;
                let p = self.param(sqlvalue::to_array(items));
                format!("{col} = ANY({p})")
            }
            "between" => {
                let (a, b) = value.split_once(',').ok_or_else(|| bad("filter", spec, "between takes two values: low,high"))?;
                let (a, b) = (scalar(a)?, scalar(b)?);
                let (pa, pb) = (self.param(a), self.param(b));
                format!("{col} BETWEEN {pa} AND {pb}")
            }
            "contains" if f.kind == FieldType::MultiPicklist => {
                let p = self.param(Bind::TextArr(Some(value.split(',').map(String::from).collect())));
                if f.custom {
                    format!("{col} ?& {p}")
                } else {
                    format!("{col} @> {p}")
                }
            }
            "contains" | "starts_with" if textual => {
                let pattern = if op == "contains" { format!("%{}%", escape_like(value)) } else { format!("{}%", escape_like(value)) };
                let p = self.param(Bind::Text(Some(pattern)));
                format!("{col} ILIKE {p}")
            }
            "contains" | "starts_with" => {
                return Err(bad("filter", spec, format!("`{op}` applies to text fields, not to a {} field", f.kind.as_str())))
            }
            "is_null" => match value {
                "true" | "" => format!("{col} IS NULL"),
                "false" => format!("{col} IS NOT NULL"),
                _ => return Err(bad("filter", spec, "is_null takes true or false")),
            },
            _ => {
                return Err(bad(
                    "filter",
                    spec,
                    format!("unknown operator `{op}` (eq, ne, lt, lte, gt, gte, in, contains, starts_with, is_null, between)"),
                ))
            }
        };
        self.conditions.push(cond);
        Ok(())
    }

    /// The tie-breaker follows the last sort key unless `id` was named, so a sort on one
    /// indexed field reads the field's `(tenant_id, field, id)` index in one direction.
    fn id_descending(&self) -> bool {
        self.id_explicit
            .unwrap_or_else(|| self.sort.last().is_some_and(|k| k.desc))
    }

    fn sort_spec(&self) -> String {
        let mut keys: Vec<String> = self
            .sort
            .iter()
            .map(|k| format!("{}{}", if k.desc { "-" } else { "" }, k.field))
            .collect();
        if self.id_descending() {
            keys.push("-id".into());
        }
        keys.join(",")
    }

    fn add_cursor(&mut self, obj: &Object, cursor: &str) -> ApiResult<()> {
        let invalid = || {
            bad(
                "cursor",
                cursor,
                "not a cursor of this list; pass next_cursor from the previous page",
            )
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| invalid())?;
        let c: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        if c.get("s").and_then(|v| v.as_str()) != Some(self.sort_spec().as_str()) {
            return Err(bad(
                "cursor",
                cursor,
                "the cursor was made for another sort order",
            ));
        }
        let values = c.get("v").and_then(|v| v.as_array()).ok_or_else(invalid)?;
        let last_id: Uuid = c
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        if values.len() != self.sort.len() {
            return Err(invalid());
        }
        // (k1 after v1) OR (k1 = v1 AND k2 after v2) OR ... OR (all equal AND id > last)
        let mut ors = Vec::new();
        let mut equal_so_far: Vec<String> = Vec::new();
        for (key, v) in self.sort.clone().iter().zip(values) {
            let f = field(obj, &key.field).ok_or_else(invalid)?.clone();
            let col = column_expr(&f);
            // NULL sorts as the largest value: last ascending, first descending.
            if v.is_null() {
                if key.desc {
                    let mut term = equal_so_far.clone();
                    term.push(format!("{col} IS NOT NULL"));
                    ors.push(format!("({})", term.join(" AND ")));
                }
                equal_so_far.push(format!("{col} IS NULL"));
                continue;
            }
            let b = sqlvalue::to_bind(&f, v).map_err(|_| invalid())?;
            let p = self.param(b);
            let after = if key.desc {
                format!("{col} < {p}")
            } else {
                format!("({col} > {p} OR {col} IS NULL)")
            };
            let mut term = equal_so_far.clone();
            term.push(after);
            ors.push(format!("({})", term.join(" AND ")));
            equal_so_far.push(format!("{col} = {p}"));
        }
        let p = self.param(Bind::Uuid(Some(last_id)));
        let mut term = equal_so_far;
        term.push(format!(
            "id {} {p}",
            if self.id_descending() { "<" } else { ">" }
        ));
        ors.push(format!("({})", term.join(" AND ")));
        self.conditions.push(format!("({})", ors.join(" OR ")));
        Ok(())
    }

    /// The SELECT of one page (one row more than the limit, to know if there is more).
    pub fn sql(&self, obj: &Object) -> String {
        let mut order: Vec<String> = self
            .sort
            .iter()
            .map(|k| {
                let col = field(obj, &k.field)
                    .map(column_expr)
                    .unwrap_or_else(|| ident(&k.field));
                format!(
                    "{col} {}",
                    if k.desc {
                        "DESC NULLS FIRST"
                    } else {
                        "ASC NULLS LAST"
                    }
                )
            })
            .collect();
        order.push(
            if self.id_descending() {
                "id DESC"
            } else {
                "id ASC"
            }
            .into(),
        );
        let mut conds = vec!["tenant_id = $1".to_string()];
        conds.extend(self.conditions.iter().cloned());
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            select_list(obj),
            table(&obj.def),
            conds.join(" AND "),
            order.join(", "),
            self.limit + 1
        )
    }

    /// The cursor that continues after `last`.
    pub fn next_cursor(&self, last: &Record) -> String {
        let values: Vec<Value> = self
            .sort
            .iter()
            .map(|k| last.get(&k.field).cloned().unwrap_or(Value::Null))
            .collect();
        let c = json!({"s": self.sort_spec(), "v": values, "id": last.get("id")});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    }
}

//! The write pipeline of one record, before any SQL: refuse what a client may not send,
//! check the JSON Schema, normalise values, apply defaults, run compute hooks and
//! formulas, then required fields, rules and validate hooks. Every problem found is
//! returned at once; nothing is written unless this succeeds.

use crate::catalog::{Catalog, Object};
use crate::check::SYSTEM_FIELDS;
use crate::model::{DefaultValue, FieldType};
use crate::values;
use platform_plugin_api::{HookContext, Issue, Operation, PluginError, Record};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// What kind of write the input is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// POST: a new record.
    Create,
    /// PUT: the full writable state; absent fields become their default or null.
    Replace,
    /// PATCH: only the fields given change.
    Patch,
}

/// A failure of the pipeline.
#[derive(Debug)]
pub enum PrepareError {
    /// The client's input: a 422 listing every issue.
    Invalid(Vec<Issue>),
    /// A plugin could not run (its configuration): an internal error.
    Plugin(String),
}

/// Prepares `input` for writing `obj`. `existing` is the current record (with its
/// children) for Replace and Patch. The result is the complete record in canonical JSON,
/// children embedded, without system fields (lines keep an `id` when one was given).
pub fn prepare(
    cat: &Catalog,
    obj: &Object,
    input: &Value,
    mode: WriteMode,
    existing: Option<&Record>,
) -> Result<Record, PrepareError> {
    let Some(map) = input.as_object() else {
        return Err(PrepareError::Invalid(vec![Issue::new(
            "",
            "type",
            "the body must be a JSON object",
            input.clone(),
        )]));
    };
    let mut issues = Vec::new();
    let stripped = strip_forbidden(cat, obj, map, "", &mut issues);
    let validator = match mode {
        WriteMode::Patch => &obj.patch_validator,
        _ => &obj.create_validator,
    };
    let stripped_value = Value::Object(stripped);
    for e in validator.iter_errors(&stripped_value) {
        issues.push(schema_issue(&e));
    }
    // Values the schema refused are not normalised again, but every other field is, so
    // one response lists the problems of every field.
    let skip: HashSet<String> = issues.iter().map(|i| i.field.clone()).collect();
    let Value::Object(stripped) = stripped_value else {
        unreachable!("stripped input is an object")
    };
    let op = if mode == WriteMode::Create {
        Operation::Create
    } else {
        Operation::Update
    };
    let record = build(cat, obj, &stripped, mode, existing, "", &skip, &mut issues);
    if !issues.is_empty() {
        return Err(PrepareError::Invalid(issues));
    }
    let mut record = record;
    // Compute hooks see the whole document, children included.
    for h in &obj.def.hooks {
        let Some(p) = cat.plugins.get(&h.plugin) else {
            continue;
        };
        let ctx = HookContext {
            object: obj.name(),
            config: &h.config,
            operation: op,
        };
        match p.compute(&ctx, &mut record) {
            Ok(()) => {}
            Err(PluginError::Invalid(mut found)) => issues.append(&mut found),
            Err(PluginError::Config(m)) => {
                return Err(PrepareError::Plugin(format!("{}: {m}", h.plugin)))
            }
        }
    }
    if !issues.is_empty() {
        return Err(PrepareError::Invalid(issues));
    }
    finish(cat, obj, &mut record, "", &mut issues);
    for h in &obj.def.hooks {
        let Some(p) = cat.plugins.get(&h.plugin) else {
            continue;
        };
        let ctx = HookContext {
            object: obj.name(),
            config: &h.config,
            operation: op,
        };
        issues.extend(p.validate(&ctx, &record));
    }
    if issues.is_empty() {
        Ok(record)
    } else {
        Err(PrepareError::Invalid(issues))
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Reports (and drops) system, read-only and unknown fields, walking into lines.
fn strip_forbidden(
    cat: &Catalog,
    obj: &Object,
    map: &Map<String, Value>,
    prefix: &str,
    issues: &mut Vec<Issue>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map {
        let path = join(prefix, k);
        if obj.def.child && k == "id" {
            out.insert(k.clone(), v.clone());
            continue;
        }
        if SYSTEM_FIELDS.contains(&k.as_str()) {
            issues.push(Issue::new(
                path,
                "system_field",
                format!("`{k}` is set by the system and cannot be written"),
                v.clone(),
            ));
            continue;
        }
        let Some(f) = obj.field(k) else {
            issues.push(Issue::new(
                path,
                "unknown_field",
                format!("`{}` has no field `{k}`", obj.name()),
                v.clone(),
            ));
            continue;
        };
        if f.kind == FieldType::Children {
            let child = f.object.as_deref().and_then(|c| cat.get(c));
            match (v, child) {
                (Value::Array(items), Some(child)) => {
                    let lines = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| match item.as_object() {
                            Some(m) => Value::Object(strip_forbidden(
                                cat,
                                child,
                                m,
                                &format!("{path}[{i}]"),
                                issues,
                            )),
                            None => item.clone(),
                        })
                        .collect();
                    out.insert(k.clone(), Value::Array(lines));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
            continue;
        }
        if !f.is_writable() {
            issues.push(Issue::new(
                path,
                "read_only",
                format!("`{k}` is read-only"),
                v.clone(),
            ));
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    out
}

fn schema_issue(e: &jsonschema::ValidationError<'_>) -> Issue {
    use jsonschema::error::ValidationErrorKind as K;
    let mut field = pointer_to_path(e.instance_path.as_str());
    let (rule, message) = match &e.kind {
        K::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            field = join(&field, p);
            ("required", "is required".to_string())
        }
        K::Type { .. } => ("type", e.to_string()),
        K::MaxLength { limit } => (
            "max_length",
            format!("must be at most {limit} characters long"),
        ),
        K::MinLength { limit } => (
            "min_length",
            format!("must be at least {limit} characters long"),
        ),
        K::Pattern { pattern } if pattern == values::DECIMAL_PATTERN => (
            "type",
            "must be a decimal number such as \"12.50\"".to_string(),
        ),
        K::Pattern { pattern } if pattern == values::PHONE_PATTERN => (
            "format",
            "must be a phone number: digits, spaces and + ( ) . / -".to_string(),
        ),
        K::Pattern { pattern } => ("pattern", format!("must match the pattern {pattern}")),
        K::Enum { options } => ("options", format!("must be one of {options}")),
        K::Minimum { limit } => ("minimum", format!("must be at least {limit}")),
        K::Maximum { limit } => ("maximum", format!("must be at most {limit}")),
        K::Format { format } => ("format", format!("must be a valid {format}")),
        K::UniqueItems => ("unique_items", "must not repeat a value".to_string()),
        K::AdditionalProperties { unexpected } => (
            "unknown_field",
            format!("unknown field(s): {}", unexpected.join(", ")),
        ),
        _ => ("schema", e.to_string()),
    };
    let value = if rule == "required" {
        Value::Null
    } else {
        e.instance.clone().into_owned()
    };
    Issue::new(field, rule, message, value)
}

/// `/lines/1/quantity` -> `lines[1].quantity`
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Normalises the input and merges it with defaults or the existing record.
#[allow(clippy::too_many_arguments)]
fn build(
    cat: &Catalog,
    obj: &Object,
    input: &Map<String, Value>,
    mode: WriteMode,
    existing: Option<&Record>,
    prefix: &str,
    skip: &HashSet<String>,
    issues: &mut Vec<Issue>,
) -> Record {
    let mut rec = Record::new();
    if obj.def.child {
        if let Some(id) = input.get("id") {
            rec.insert("id".into(), id.clone());
        }
    } else if let Some(e) = existing {
        // Rules and formulas may read the system fields of an existing record.
        for s in SYSTEM_FIELDS {
            if let Some(v) = e.get(*s) {
                rec.insert(s.to_string(), v.clone());
            }
        }
    }
    for f in &obj.def.fields {
        let path = join(prefix, &f.name);
        if f.kind == FieldType::Children {
            let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) else {
                continue;
            };
            let lines = match input.get(&f.name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let m = item.as_object().cloned().unwrap_or_default();
                        Value::Object(build(
                            cat,
                            child,
                            &m,
                            WriteMode::Create,
                            None,
                            &format!("{path}[{i}]"),
                            skip,
                            issues,
                        ))
                    })
                    .collect(),
                _ if mode == WriteMode::Patch => existing
                    .and_then(|e| e.get(&f.name))
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            rec.insert(f.name.clone(), Value::Array(lines));
            continue;
        }
        let given = if f.is_writable() {
            input.get(&f.name)
        } else {
            None
        };
        let value = match (given, mode) {
            (Some(_), _) if skip.contains(&path) => Value::Null,
            (Some(v), _) => match values::normalize(f, &path, v) {
                Ok(v) => v,
                Err(i) => {
                    issues.push(i);
                    Value::Null
                }
            },
            (None, WriteMode::Patch) => existing
                .and_then(|e| e.get(&f.name))
                .cloned()
                .unwrap_or(Value::Null),
            (None, WriteMode::Create) if f.read_only => {
                default_value(cat, obj, f, input, &path, issues)
            }
            (None, _) if !f.is_writable() => existing
                .and_then(|e| e.get(&f.name))
                .cloned()
                .unwrap_or(Value::Null),
            (None, _) => default_value(cat, obj, f, input, &path, issues),
        };
        rec.insert(f.name.clone(), value);
    }
    rec
}

fn default_value(
    cat: &Catalog,
    obj: &Object,
    f: &crate::model::FieldDef,
    input: &Map<String, Value>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Value {
    match &f.default {
        None => Value::Null,
        Some(DefaultValue::Literal(v)) => values::normalize(f, path, v).unwrap_or(Value::Null),
        Some(DefaultValue::Expr { .. }) => {
            let Some(&idx) = obj.default_exprs.get(&f.name) else {
                return Value::Null;
            };
            let ctx = expr_context(cat, obj, input);
            match obj.exprs.eval(idx, &ctx) {
                Ok(v) if v.is_undefined() || v.is_none() => Value::Null,
                Ok(v) => {
                    let json = serde_json::to_value(&v).unwrap_or(Value::Null);
                    match values::normalize(f, path, &json) {
                        Ok(v) => v,
                        Err(i) => {
                            issues.push(Issue::new(
                                path,
                                "default",
                                format!("the default gave an invalid value: {}", i.message),
                                json,
                            ));
                            Value::Null
                        }
                    }
                }
                Err(e) => {
                    issues.push(Issue::new(
                        path,
                        "default",
                        format!("the default could not be computed: {e}"),
                        Value::Null,
                    ));
                    Value::Null
                }
            }
        }
    }
}

/// Formulas, required fields and rules, on the record and each of its lines.
fn finish(cat: &Catalog, obj: &Object, rec: &mut Record, prefix: &str, issues: &mut Vec<Issue>) {
    for f in obj.children() {
        let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) else {
            continue;
        };
        if let Some(Value::Array(lines)) = rec.get_mut(&f.name) {
            for (i, line) in lines.iter_mut().enumerate() {
                if let Some(m) = line.as_object_mut() {
                    finish(
                        cat,
                        child,
                        m,
                        &format!("{}[{i}]", join(prefix, &f.name)),
                        issues,
                    );
                }
            }
        }
    }
    if !obj.formula_exprs.is_empty() {
        for &(fi, ei) in &obj.formula_exprs {
            // Formulas run in definition order and see the ones before them.
            let ctx = expr_context(cat, obj, rec);
            let f = &obj.def.fields[fi];
            let v = match obj.exprs.eval(ei, &ctx) {
                Ok(v) if v.is_undefined() || v.is_none() => Value::Null,
                Ok(v) => match f.returns {
                    Some(FieldType::Integer) => v.as_i64().map(Value::from).unwrap_or(Value::Null),
                    Some(FieldType::Boolean) => Value::Bool(v.is_true()),
                    Some(FieldType::Date) => {
                        let s = v.to_string();
                        match chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                            Ok(d) => Value::String(d.to_string()),
                            Err(_) => Value::Null,
                        }
                    }
                    _ => Value::String(v.to_string()),
                },
                Err(_) => Value::Null,
            };
            rec.insert(f.name.clone(), v);
        }
    }
    for f in &obj.def.fields {
        if f.required
            && f.is_stored()
            && f.kind != FieldType::Autonumber
            && rec.get(&f.name).is_none_or(Value::is_null)
        {
            issues.push(Issue::new(
                join(prefix, &f.name),
                "required",
                "is required",
                Value::Null,
            ));
        }
    }
    if !obj.def.rules.is_empty() {
        let ctx = expr_context(cat, obj, rec);
        for (i, r) in obj.def.rules.iter().enumerate() {
            let ok = match obj.exprs.eval(i, &ctx) {
                Ok(v) => v.is_true(),
                Err(_) => false,
            };
            if !ok {
                let field = r
                    .field
                    .as_deref()
                    .map(|f| join(prefix, f))
                    .unwrap_or_else(|| prefix.to_string());
                let value = r
                    .field
                    .as_deref()
                    .and_then(|f| rec.get(f))
                    .cloned()
                    .unwrap_or(Value::Null);
                issues.push(Issue::new(field, r.name.clone(), r.message.clone(), value));
            }
        }
    }
}

/// The values an expression sees: the record's fields, decimals as numbers, lines as
/// lists of their own contexts.
pub fn expr_context(cat: &Catalog, obj: &Object, rec: &Map<String, Value>) -> minijinja::Value {
    fn convert(cat: &Catalog, obj: &Object, rec: &Map<String, Value>) -> Value {
        let mut out = Map::new();
        for s in SYSTEM_FIELDS {
            out.insert(s.to_string(), rec.get(*s).cloned().unwrap_or(Value::Null));
        }
        for f in &obj.def.fields {
            let v = rec.get(&f.name).cloned().unwrap_or(Value::Null);
            let v = match (&v, f.kind) {
                (Value::String(s), k) if k.is_decimal() => {
                    s.parse::<f64>().map(Value::from).unwrap_or(Value::Null)
                }
                (Value::Array(lines), FieldType::Children) => {
                    match f.object.as_deref().and_then(|c| cat.get(c)) {
                        Some(child) => Value::Array(
                            lines
                                .iter()
                                .map(|l| {
                                    l.as_object()
                                        .map(|m| convert(cat, child, m))
                                        .unwrap_or(Value::Null)
                                })
                                .collect(),
                        ),
                        None => v,
                    }
                }
                _ => v,
            };
            out.insert(f.name.clone(), v);
        }
        Value::Object(out)
    }
    minijinja::Value::from_serialize(convert(cat, obj, rec))
}

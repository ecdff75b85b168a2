//! Checking definitions: structure against the published JSON Schema, then meaning
//! (names, references, expressions, children cycles). Every error is collected; nothing
//! stops at the first one.

use crate::expr;
use crate::model::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The JSON Schema of a definition file, published at `/api/v1/metadata/schema`.
pub const OBJECT_SCHEMA: &str = include_str!("../../../metadata/object.schema.json");

/// Field names every table has; a definition may not declare them.
pub const SYSTEM_FIELDS: &[&str] = &[
    "id",
    "tenant_id",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "parent_id",
    "position",
    "state",
    "custom",
];

/// The prefix of tenants' custom field names.
pub const CUSTOM_PREFIX: &str = "cf_";

/// Schemas a service may not be named after.
const RESERVED_SERVICES: &[&str] = &["public", "engine", "information_schema", "pg_catalog"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DefinitionError {
    /// The file (or `api` for definitions that came through the Metadata API).
    pub file: String,
    /// JSON path inside the file, e.g. `$.fields[2].type`.
    pub path: String,
    /// A stable code: schema, duplicate_name, reserved_name, unknown_object, ...
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: [{}] {}",
            self.file, self.path, self.code, self.message
        )
    }
}

/// A definition source: where it came from and its JSON text.
pub struct Source {
    pub file: String,
    pub text: String,
}

/// Reads every `*.json` file of `dir/objects`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, std::io::Error> {
    let objects = dir.join("objects");
    let mut files: Vec<_> = std::fs::read_dir(&objects)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            Ok(Source {
                file: format!(
                    "objects/{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                ),
                text: std::fs::read_to_string(&p)?,
            })
        })
        .collect()
}

/// Parses and checks definitions. `plugins` are the names of the registered plugins.
pub fn check_sources(
    sources: &[Source],
    plugins: &BTreeSet<String>,
) -> Result<Vec<ObjectDef>, Vec<DefinitionError>> {
    let schema: Value = serde_json::from_str(OBJECT_SCHEMA).expect("object schema is valid JSON");
    let validator = jsonschema::options()
        .build(&schema)
        .expect("object schema compiles");
    let mut errors = Vec::new();
    let mut defs = Vec::new();
    for src in sources {
        let value: Value = match serde_json::from_str(&src.text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(&src.file, "$", "invalid_json", e.to_string()));
                continue;
            }
        };
        let before = errors.len();
        for e in validator.iter_errors(&value) {
            errors.push(err(
                &src.file,
                &json_path(e.instance_path.as_str()),
                "schema",
                e.to_string(),
            ));
        }
        if errors.len() > before {
            continue;
        }
        match serde_json::from_value::<ObjectDef>(value) {
            Ok(def) => defs.push((src.file.clone(), def)),
            Err(e) => errors.push(err(&src.file, "$", "schema", e.to_string())),
        }
    }
    errors.extend(check_defs(&defs, plugins));
    if errors.is_empty() {
        Ok(defs.into_iter().map(|(_, d)| d).collect())
    } else {
        Err(errors)
    }
}

/// Parses one definition given as JSON (from the Metadata API): the published schema,
/// then the types. Meaning is checked with the whole catalog.
pub fn parse_definition(file: &str, value: &Value) -> Result<ObjectDef, Vec<DefinitionError>> {
    let schema: Value = serde_json::from_str(OBJECT_SCHEMA).expect("object schema is valid JSON");
    let validator = jsonschema::options()
        .build(&schema)
        .expect("object schema compiles");
    let errors: Vec<DefinitionError> = validator
        .iter_errors(value)
        .map(|e| {
            err(
                file,
                &json_path(e.instance_path.as_str()),
                "schema",
                e.to_string(),
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(value.clone()).map_err(|e| vec![err(file, "$", "schema", e.to_string())])
}

fn err(file: &str, path: &str, code: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        file: file.to_string(),
        path: path.to_string(),
        code: code.to_string(),
        message: message.into(),
    }
}

/// `/fields/2/type` -> `$.fields[2].type`
pub fn json_path(pointer: &str) -> String {
    let mut out = String::from("$");
    for part in pointer.split('/').skip(1) {
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            out.push('.');
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Semantic checks across all definitions (structure is already valid).
pub fn check_defs(
    defs: &[(String, ObjectDef)],
    plugins: &BTreeSet<String>,
) -> Vec<DefinitionError> {
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<&str, &ObjectDef> = BTreeMap::new();
    for (file, def) in defs {
        if by_name.insert(def.name.as_str(), def).is_some() {
            errors.push(err(
                file,
                "$.name",
                "duplicate_name",
                format!("object `{}` is defined more than once", def.name),
            ));
        }
        if file.starts_with("objects/") && *file != format!("objects/{}.json", def.name) {
            errors.push(err(
                file,
                "$.name",
                "file_name",
                format!(
                    "the file of object `{}` must be named {}.json",
                    def.name, def.name
                ),
            ));
        }
    }
    // Which object is the child of which parent (through children fields).
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (file, def) in defs {
        check_object(file, def, &by_name, plugins, &mut errors);
        for f in &def.fields {
            if let (FieldType::Children, Some(child)) = (f.kind, &f.object) {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(def.name.as_str());
            }
        }
    }
    for (file, def) in defs {
        let p = parents.get(def.name.as_str()).map(|v| v.len()).unwrap_or(0);
        if def.child && p != 1 {
            errors.push(err(
                file,
                "$.child",
                "child_parent",
                format!(
                    "child object `{}` must be the lines of exactly one parent, found {p}",
                    def.name
                ),
            ));
        }
    }
    // Cycles through children fields.
    for (file, def) in defs {
        let mut path = vec![def.name.as_str()];
        if let Some(cycle) = children_cycle(&by_name, &mut path) {
            errors.push(err(
                file,
                "$.fields",
                "children_cycle",
                format!("children form a cycle: {}", cycle.join(" -> ")),
            ));
        }
    }
    errors
}

fn children_cycle<'a>(
    by_name: &BTreeMap<&str, &'a ObjectDef>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<String>> {
    let current = by_name.get(path.last()?)?;
    for f in &current.fields {
        if f.kind != FieldType::Children {
            continue;
        }
        let Some(child) = f.object.as_deref() else {
            continue;
        };
        let Some(child_def) = by_name.get(child) else {
            continue;
        };
        if child == path[0] {
            let mut c: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            c.push(child.to_string());
            return Some(c);
        }
        if path.contains(&child) {
            continue; // a cycle not through the start; reported from its own start
        }
        path.push(child_def.name.as_str());
        if let Some(c) = children_cycle(by_name, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

fn check_object(
    file: &str,
    def: &ObjectDef,
    by_name: &BTreeMap<&str, &ObjectDef>,
    plugins: &BTreeSet<String>,
    errors: &mut Vec<DefinitionError>,
) {
    if RESERVED_SERVICES.contains(&def.service.as_str()) || def.service.starts_with("pg_") {
        errors.push(err(
            file,
            "$.service",
            "reserved_name",
            format!("`{}` is reserved and cannot name a service", def.service),
        ));
    }
    let mut seen = BTreeSet::new();
    let known: BTreeSet<String> = def
        .fields
        .iter()
        .map(|f| f.name.clone())
        .chain(SYSTEM_FIELDS.iter().map(|s| s.to_string()))
        .collect();
    for (i, f) in def.fields.iter().enumerate() {
        let at = |attr: &str| {
            if attr.is_empty() {
                format!("$.fields[{i}]")
            } else {
                format!("$.fields[{i}].{attr}")
            }
        };
        if !seen.insert(f.name.as_str()) {
            errors.push(err(
                file,
                &at("name"),
                "duplicate_name",
                format!("field `{}` is declared more than once", f.name),
            ));
        }
        if f.custom != f.name.starts_with(CUSTOM_PREFIX) {
            errors.push(err(
                file,
                &at("name"),
                "reserved_name",
                if f.custom {
                    format!("a tenant's custom field is named {CUSTOM_PREFIX}<name>, not `{}`", f.name)
                } else {
                    format!("`{CUSTOM_PREFIX}` starts the names of tenants' custom fields; `{}` cannot be declared", f.name)
                },
            ));
        }
        if f.custom {
            use FieldType::*;
            if matches!(f.kind, Children | Reference | Autonumber | Formula) || f.unique {
                errors.push(err(
                    file,
                    &at("type"),
                    "attribute_not_allowed",
                    "a custom field cannot be children, reference, autonumber, formula or unique",
                ));
            }
            if f.indexed {
                errors.push(err(
                    file,
                    &at("indexed"),
                    "attribute_not_allowed",
                    "custom fields are not indexed (yet): their values share one JSONB column",
                ));
            }
        }
        if SYSTEM_FIELDS.contains(&f.name.as_str()) {
            errors.push(err(
                file,
                &at("name"),
                "reserved_name",
                format!("`{}` is a system field and cannot be declared", f.name),
            ));
        }
        check_field(file, def, f, &at, by_name, &known, errors);
    }
    for (i, r) in def.rules.iter().enumerate() {
        check_expr(
            file,
            &format!("$.rules[{i}].expression"),
            &r.expression,
            &known,
            errors,
        );
        if let Some(fld) = &r.field {
            if !known.contains(fld) {
                errors.push(err(
                    file,
                    &format!("$.rules[{i}].field"),
                    "unknown_field",
                    format!("rule `{}` names unknown field `{fld}`", r.name),
                ));
            }
        }
    }
    if let Some(t) = &def.title_field {
        if !known.contains(t) {
            errors.push(err(
                file,
                "$.title_field",
                "unknown_field",
                format!("unknown field `{t}`"),
            ));
        }
    }
    if let Some(form) = &def.layouts.form {
        for (s, sec) in form.sections.iter().enumerate() {
            for (j, name) in sec.fields.iter().enumerate() {
                if !seen.contains(name.as_str()) {
                    errors.push(err(
                        file,
                        &format!("$.layouts.form.sections[{s}].fields[{j}]"),
                        "unknown_field",
                        format!("form layout names unknown field `{name}`"),
                    ));
                }
            }
        }
    }
    if let Some(list) = &def.layouts.list {
        for (j, name) in list.columns.iter().enumerate() {
            if !known.contains(name) {
                errors.push(err(
                    file,
                    &format!("$.layouts.list.columns[{j}]"),
                    "unknown_field",
                    format!("list layout names unknown field `{name}`"),
                ));
            }
        }
        if let Some(sort) = &list.default_sort {
            for key in sort.split(',') {
                let name = key.trim_start_matches('-');
                if !known.contains(name) {
                    errors.push(err(
                        file,
                        "$.layouts.list.default_sort",
                        "unknown_field",
                        format!("default sort names unknown field `{name}`"),
                    ));
                }
            }
        }
    }
    if def.child && !def.hooks.is_empty() {
        errors.push(err(
            file,
            "$.hooks",
            "attribute_not_allowed",
            "hooks run on the object being written; declare them on the parent of these lines",
        ));
    }
    for (i, h) in def.hooks.iter().enumerate() {
        if !plugins.contains(&h.plugin) {
            errors.push(err(
                file,
                &format!("$.hooks[{i}].plugin"),
                "unknown_plugin",
                format!(
                    "no plugin named `{}` is registered (known: {})",
                    h.plugin,
                    plugins.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let Some(lc) = &def.lifecycle {
        check_lifecycle(file, def, lc, errors);
    }
}

fn check_lifecycle(
    file: &str,
    def: &ObjectDef,
    lc: &LifecycleDef,
    errors: &mut Vec<DefinitionError>,
) {
    if def.child {
        errors.push(err(
            file,
            "$.lifecycle",
            "attribute_not_allowed",
            "lines follow their parent's lifecycle; declare it on the parent",
        ));
    }
    let Some(field) = def.fields.iter().find(|f| f.name == lc.field) else {
        errors.push(err(
            file,
            "$.lifecycle.field",
            "unknown_field",
            format!("no field named `{}`", lc.field),
        ));
        return;
    };
    if field.kind != FieldType::Picklist {
        errors.push(err(
            file,
            "$.lifecycle.field",
            "lifecycle_field",
            format!("`{}` must be a picklist to hold the states", lc.field),
        ));
        return;
    }
    let states: BTreeSet<&str> = field.option_values().collect();
    let initial = match &field.default {
        Some(DefaultValue::Literal(Value::String(s))) => Some(s.as_str()),
        _ => None,
    };
    if !initial.is_some_and(|s| states.contains(s)) {
        errors.push(err(
            file,
            "$.lifecycle.field",
            "lifecycle_initial",
            format!(
                "`{}` needs a default that is one of its options: the initial state",
                lc.field
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, t) in lc.transitions.iter().enumerate() {
        if !names.insert(t.name.as_str()) {
            errors.push(err(
                file,
                &format!("$.lifecycle.transitions[{i}].name"),
                "duplicate",
                format!("transition `{}` is declared twice", t.name),
            ));
        }
        for (j, s) in t.from.iter().enumerate() {
            if !states.contains(s.as_str()) {
                errors.push(err(
                    file,
                    &format!("$.lifecycle.transitions[{i}].from[{j}]"),
                    "unknown_state",
                    format!("`{s}` is not an option of `{}`", lc.field),
                ));
            }
        }
        if !states.contains(t.to.as_str()) {
            errors.push(err(
                file,
                &format!("$.lifecycle.transitions[{i}].to"),
                "unknown_state",
                format!("`{}` is not an option of `{}`", t.to, lc.field),
            ));
        }
    }
}

fn check_expr(
    file: &str,
    path: &str,
    source: &str,
    known: &BTreeSet<String>,
    errors: &mut Vec<DefinitionError>,
) {
    match expr::check(source, known) {
        Ok(unknown) if unknown.is_empty() => {}
        Ok(unknown) => errors.push(err(
            file,
            path,
            "unknown_field",
            format!("expression reads unknown field(s): {}", unknown.join(", ")),
        )),
        Err(e) => errors.push(err(
            file,
            path,
            "expression",
            format!("expression does not compile: {e}"),
        )),
    }
}

/// Which attributes make sense for which type.
fn allowed_attrs(kind: FieldType) -> &'static [&'static str] {
    use FieldType::*;
    match kind {
        Text | LongText => &["max_length", "pattern", "unique", "indexed", "default"],
        Email | Phone | Url => &["max_length", "unique", "indexed", "default"],
        Integer => &["min", "max", "unique", "indexed", "default"],
        Decimal | Percent => &[
            "min",
            "max",
            "precision",
            "scale",
            "rounding",
            "unique",
            "indexed",
            "default",
        ],
        Money => &[
            "min",
            "max",
            "precision",
            "scale",
            "rounding",
            "currency_field",
            "indexed",
            "default",
        ],
        Boolean => &["default", "indexed"],
        Date | Datetime => &["min", "max", "indexed", "default"],
        Picklist => &["options", "indexed", "default"],
        MultiPicklist => &["options", "default"],
        Reference => &["target", "on_delete", "indexed", "unique"],
        Children => &["object"],
        Formula => &["expression", "returns", "indexed"],
        Autonumber => &["format", "unique", "indexed", "gapless"],
        Json => &["default"],
    }
}

#[allow(clippy::too_many_arguments)]
fn check_field(
    file: &str,
    def: &ObjectDef,
    f: &FieldDef,
    at: &dyn Fn(&str) -> String,
    by_name: &BTreeMap<&str, &ObjectDef>,
    known: &BTreeSet<String>,
    errors: &mut Vec<DefinitionError>,
) {
    let allowed = allowed_attrs(f.kind);
    let present: [(&str, bool); 16] = [
        ("gapless", f.gapless),
        ("max_length", f.max_length.is_some()),
        ("pattern", f.pattern.is_some()),
        ("unique", f.unique),
        ("indexed", f.indexed),
        ("default", f.default.is_some()),
        ("min", f.min.is_some()),
        ("max", f.max.is_some()),
        ("precision", f.precision.is_some()),
        ("scale", f.scale.is_some()),
        ("rounding", f.rounding.is_some()),
        ("currency_field", f.currency_field.is_some()),
        ("options", f.options.is_some()),
        ("target", f.target.is_some() || f.on_delete.is_some()),
        ("object", f.object.is_some()),
        (
            "expression",
            f.expression.is_some() || f.returns.is_some() || f.format.is_some(),
        ),
    ];
    for (attr, set) in present {
        let ok = match attr {
            "expression" => {
                (f.expression.is_none() && f.returns.is_none() || allowed.contains(&"expression"))
                    && (f.format.is_none() || allowed.contains(&"format"))
            }
            _ => allowed.contains(&attr),
        };
        if set && !ok {
            errors.push(err(
                file,
                &at(attr),
                "attribute_not_allowed",
                format!("`{attr}` does not apply to a {} field", f.kind.as_str()),
            ));
        }
    }
    if f.kind == FieldType::Children && (f.required || f.read_only) {
        errors.push(err(
            file,
            &at("required"),
            "attribute_not_allowed",
            "children fields cannot be required or read_only; use a rule on the line count",
        ));
    }
    match f.kind {
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            if f.scale() > f.precision() {
                errors.push(err(
                    file,
                    &at("scale"),
                    "invalid_attribute",
                    format!(
                        "scale {} is larger than precision {}",
                        f.scale(),
                        f.precision()
                    ),
                ));
            }
            if let Some(cf) = &f.currency_field {
                match def.fields.iter().find(|x| &x.name == cf) {
                    Some(x) if matches!(x.kind, FieldType::Picklist | FieldType::Text) => {}
                    _ => errors.push(err(
                        file,
                        &at("currency_field"),
                        "unknown_field",
                        format!(
                            "currency field `{cf}` must be a picklist or text field of `{}`",
                            def.name
                        ),
                    )),
                }
            }
        }
        FieldType::Picklist | FieldType::MultiPicklist => match &f.options {
            None => errors.push(err(
                file,
                &at("options"),
                "missing_attribute",
                "a picklist needs options",
            )),
            Some(opts) => {
                let mut vals = BTreeSet::new();
                for (j, o) in opts.iter().enumerate() {
                    if !vals.insert(o.value()) {
                        errors.push(err(
                            file,
                            &format!("{}[{j}]", at("options")),
                            "duplicate_name",
                            format!("option `{}` appears more than once", o.value()),
                        ));
                    }
                }
            }
        },
        FieldType::Reference => match &f.target {
            None => errors.push(err(
                file,
                &at("target"),
                "missing_attribute",
                "a reference needs a target object",
            )),
            Some(t) => match by_name.get(t.as_str()) {
                None => errors.push(err(
                    file,
                    &at("target"),
                    "unknown_object",
                    format!("reference to missing object `{t}`"),
                )),
                Some(target) if target.child => errors.push(err(
                    file,
                    &at("target"),
                    "invalid_attribute",
                    format!("`{t}` is a child object and cannot be referenced"),
                )),
                Some(_) => {
                    if f.on_delete == Some(OnDelete::SetNull) && f.required {
                        errors.push(err(
                            file,
                            &at("on_delete"),
                            "invalid_attribute",
                            "a required reference cannot be set null on delete",
                        ));
                    }
                }
            },
        },
        FieldType::Children => match &f.object {
            None => errors.push(err(
                file,
                &at("object"),
                "missing_attribute",
                "children need an object",
            )),
            Some(o) => match by_name.get(o.as_str()) {
                None => errors.push(err(
                    file,
                    &at("object"),
                    "unknown_object",
                    format!("children of missing object `{o}`"),
                )),
                Some(c) if !c.child => errors.push(err(
                    file,
                    &at("object"),
                    "invalid_attribute",
                    format!("`{o}` must be declared with \"child\": true to be used as lines"),
                )),
                Some(_) => {}
            },
        },
        FieldType::Formula => {
            match &f.expression {
                None => errors.push(err(
                    file,
                    &at("expression"),
                    "missing_attribute",
                    "a formula needs an expression",
                )),
                Some(e) => check_expr(file, &at("expression"), e, known, errors),
            }
            if f.returns.is_none() {
                errors.push(err(
                    file,
                    &at("returns"),
                    "missing_attribute",
                    "a formula needs `returns`",
                ));
            }
        }
        FieldType::Autonumber => match &f.format {
            Some(p) if p.contains("{seq") => {
                if crate::autonumber::parse(p).is_err() {
                    errors.push(err(
                        file,
                        &at("format"),
                        "invalid_attribute",
                        format!("bad autonumber format `{p}`"),
                    ));
                }
            }
            _ => errors.push(err(
                file,
                &at("format"),
                "missing_attribute",
                "an autonumber needs a format with {seq} or {seq:N}, e.g. OF-{YYYY}-{seq:5}",
            )),
        },
        _ => {}
    }
    if let Some(p) = &f.pattern {
        if let Err(e) = regex::Regex::new(p) {
            errors.push(err(
                file,
                &at("pattern"),
                "invalid_attribute",
                format!("pattern does not compile: {e}"),
            ));
        }
    }
    if let Some(DefaultValue::Expr { expr: e }) = &f.default {
        check_expr(file, &at("default"), e, known, errors);
    }
    if let Some(DefaultValue::Literal(v)) = &f.default {
        if let Err(msg) = crate::values::check_literal(f, v) {
            errors.push(err(file, &at("default"), "invalid_default", msg));
        }
    }
    if let Some(v) = &f.example {
        if let Err(msg) = crate::values::check_literal(f, v) {
            errors.push(err(file, &at("example"), "invalid_example", msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_becomes_json_path() {
        assert_eq!(json_path("/fields/2/type"), "$.fields[2].type");
        assert_eq!(json_path(""), "$");
    }
}

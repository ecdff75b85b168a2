//! Form and list schemas: what a front end needs to render an object for a caller,
//! derived from its definition alone (the HTML renderer is built on the same JSON).

use crate::catalog::{Catalog, Object};
use crate::model::{Action, DefaultValue, FieldDef, FieldType};
use serde_json::{json, Map, Value};

/// The input control a field is edited with.
pub fn widget(f: &FieldDef) -> &'static str {
    match f.kind {
        FieldType::Text | FieldType::Autonumber => "text",
        FieldType::LongText => "textarea",
        FieldType::Integer => "integer",
        FieldType::Decimal | FieldType::Percent => "decimal",
        FieldType::Money => "money",
        FieldType::Boolean => "checkbox",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Email => "email",
        FieldType::Phone => "tel",
        FieldType::Url => "url",
        FieldType::Picklist => "select",
        FieldType::MultiPicklist => "multiselect",
        FieldType::Reference => "lookup",
        FieldType::Children => "lines",
        FieldType::Formula => "readonly",
        FieldType::Json => "json",
    }
}

fn field_schema(cat: &Catalog, f: &FieldDef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(f.name));
    m.insert("type".into(), json!(f.kind.as_str()));
    m.insert("widget".into(), json!(widget(f)));
    m.insert("label".into(), json!(f.label()));
    m.insert("help".into(), json!(f.help));
    m.insert("required".into(), json!(f.required));
    m.insert("read_only".into(), json!(!f.is_writable()));
    if f.custom {
        m.insert("custom".into(), json!(true));
    }
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.into(), v);
        }
    };
    put("max_length", json!(f.max_length));
    put("pattern", json!(f.pattern));
    put("min", f.min.clone().unwrap_or(Value::Null));
    put("max", f.max.clone().unwrap_or(Value::Null));
    if f.kind.is_decimal() {
        put("scale", json!(f.scale()));
        put("precision", json!(f.precision()));
    }
    put("currency_field", json!(f.currency_field));
    match &f.default {
        Some(DefaultValue::Literal(v)) => put("default", v.clone()),
        Some(DefaultValue::Expr { expr }) => put("default_expression", json!(expr)),
        None => {}
    }
    if let Some(opts) = &f.options {
        put(
            "options",
            Value::Array(
                opts.iter()
                    .map(|o| {
                        let color = match o {
                            crate::model::PicklistOption::Labelled { color, .. } => color.clone(),
                            _ => None,
                        };
                        json!({"value": o.value(), "label": o.label(), "color": color})
                    })
                    .collect(),
            ),
        );
    }
    if let (FieldType::Reference, Some(t)) = (f.kind, &f.target) {
        let title = cat
            .get(t)
            .and_then(|o| o.def.title_field.clone())
            .unwrap_or_else(|| "id".into());
        put(
            "target",
            json!({"object": t, "title_field": title,
                   "search": format!("/api/v1/objects/{t}/records?filter={title}:contains:{{q}}&fields={title}&limit=20")}),
        );
    }
    if let (FieldType::Children, Some(c)) = (f.kind, &f.object) {
        if let Some(child) = cat.get(c) {
            let columns: Vec<String> = child
                .def
                .layouts
                .list
                .as_ref()
                .map(|l| l.columns.clone())
                .unwrap_or_else(|| {
                    child
                        .def
                        .fields
                        .iter()
                        .filter(|x| x.is_stored())
                        .map(|x| x.name.clone())
                        .collect()
                });
            let fields: Map<String, Value> = child
                .def
                .fields
                .iter()
                .map(|x| (x.name.clone(), field_schema(cat, x)))
                .collect();
            put(
                "lines",
                json!({"object": c, "label": child.def.label, "columns": columns, "fields": fields}),
            );
        }
    }
    Value::Object(m)
}

/// The transitions the caller may take (each still subject to the record's state).
fn lifecycle(obj: &Object, roles: &[String]) -> Value {
    let Some(lc) = &obj.def.lifecycle else {
        return Value::Null;
    };
    let transitions: Vec<Value> = lc
        .transitions
        .iter()
        .filter(|t| obj.may_transition(roles, t))
        .map(|t| {
            json!({"name": t.name, "label": t.label(), "from": t.from, "to": t.to,
                   "event": format!("{}.{}.{}", obj.def.service, obj.name(), t.event())})
        })
        .collect();
    json!({"field": lc.field, "transitions": transitions})
}

fn permissions(obj: &Object, roles: &[String]) -> Value {
    json!({
        "create": obj.allows(roles, Action::Create),
        "read": obj.allows(roles, Action::Read),
        "update": obj.allows(roles, Action::Update),
        "delete": obj.allows(roles, Action::Delete),
    })
}

/// The form of `obj` for a caller with `roles`: sections in layout order, every field
/// with its control, constraints and options. Fields no section names (a tenant's
/// custom fields, fields added later) are shown in a last section.
pub fn form_schema(cat: &Catalog, obj: &Object, roles: &[String]) -> Value {
    let mut sections: Vec<Value> = Vec::new();
    let mut placed: Vec<&str> = Vec::new();
    if let Some(form) = &obj.def.layouts.form {
        for s in &form.sections {
            let names: Vec<&str> = s
                .fields
                .iter()
                .map(String::as_str)
                .filter(|n| obj.field(n).is_some())
                .collect();
            placed.extend(&names);
            sections.push(json!({"label": s.label, "columns": s.columns, "fields": names}));
        }
    }
    let rest: Vec<&str> = obj
        .def
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !placed.contains(n))
        .collect();
    if !rest.is_empty() {
        let label = if sections.is_empty() {
            obj.def.label.clone()
        } else {
            "More".to_string()
        };
        sections.push(
            json!({"label": label, "columns": if rest.len() > 3 { 2 } else { 1 }, "fields": rest}),
        );
    }
    let mut fields: Map<String, Value> = obj
        .def
        .fields
        .iter()
        .map(|f| (f.name.clone(), field_schema(cat, f)))
        .collect();
    // The state changes through transitions only.
    if let Some(f) = obj
        .def
        .lifecycle
        .as_ref()
        .and_then(|lc| fields.get_mut(&lc.field))
    {
        f["read_only"] = json!(true);
        f["lifecycle"] = json!(true);
    }
    json!({
        "object": obj.name(),
        "label": obj.def.label,
        "plural_label": obj.plural_label(),
        "description": obj.def.description,
        "title_field": obj.def.title_field,
        "permissions": permissions(obj, roles),
        "lifecycle": lifecycle(obj, roles),
        "sections": sections,
        "fields": fields,
    })
}

/// Filter operators that apply to a field type.
pub fn operators(f: &FieldDef) -> &'static [&'static str] {
    match f.kind {
        FieldType::Json => &["is_null"],
        FieldType::MultiPicklist => &["contains", "is_null"],
        FieldType::Boolean => &["eq", "ne", "is_null"],
        FieldType::Reference | FieldType::Picklist => &["eq", "ne", "in", "is_null"],
        k if k.is_textual() => &[
            "eq",
            "ne",
            "in",
            "contains",
            "starts_with",
            "lt",
            "lte",
            "gt",
            "gte",
            "is_null",
        ],
        _ => &[
            "eq", "ne", "lt", "lte", "gt", "gte", "in", "between", "is_null",
        ],
    }
}

/// The list of `obj`: its columns, default sort, and what can be filtered and sorted.
pub fn list_schema(cat: &Catalog, obj: &Object, roles: &[String]) -> Value {
    let list = obj.def.layouts.list.as_ref();
    let mut columns: Vec<String> = list.map(|l| l.columns.clone()).unwrap_or_else(|| {
        obj.def
            .fields
            .iter()
            .filter(|f| f.is_stored() && f.kind != FieldType::LongText)
            .take(6)
            .map(|f| f.name.clone())
            .collect()
    });
    for f in obj.custom_fields() {
        if !columns.contains(&f.name) {
            columns.push(f.name.clone());
        }
    }
    let filters: Map<String, Value> = obj
        .def
        .fields
        .iter()
        .filter(|f| f.is_stored())
        .map(|f| (f.name.clone(), json!(operators(f))))
        .collect();
    let sortable: Vec<&str> = obj
        .def
        .fields
        .iter()
        .filter(|f| {
            f.is_stored()
                && !matches!(
                    f.kind,
                    FieldType::Json | FieldType::MultiPicklist | FieldType::LongText
                )
        })
        .map(|f| f.name.as_str())
        .chain(["created_at", "updated_at"])
        .collect();
    let fields: Map<String, Value> = obj
        .def
        .fields
        .iter()
        .filter(|f| f.is_stored())
        .map(|f| (f.name.clone(), field_schema(cat, f)))
        .collect();
    json!({
        "object": obj.name(),
        "label": obj.def.label,
        "plural_label": obj.plural_label(),
        "title_field": obj.def.title_field,
        "permissions": permissions(obj, roles),
        "columns": columns,
        "default_sort": list.and_then(|l| l.default_sort.clone()).unwrap_or_else(|| "created_at".into()),
        "filters": filters,
        "sortable": sortable,
        "fields": fields,
    })
}

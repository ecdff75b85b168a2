//! Request examples for the OpenAPI document: a create body for each object that
//! succeeds when posted as it is, once the records it references exist.
//!
//! Every example carries a fixed `id` (a UUIDv5 of the object's name), and references
//! point at the fixed id of the target's example, so posting the examples in dependency
//! order into an empty tenant succeeds.

use crate::catalog::{Catalog, Object};
use crate::model::{FieldDef, FieldType};
use serde_json::{json, Map, Value};

/// The fixed id of `object`'s example record.
pub fn example_id(object: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("urn:platform:example:{object}").as_bytes(),
    )
}

/// The create example of `obj`.
pub fn create_example(cat: &Catalog, obj: &Object) -> Value {
    let mut m = Map::new();
    if !obj.def.child {
        m.insert("id".into(), json!(example_id(obj.name()).to_string()));
    }
    for f in &obj.def.fields {
        if f.kind == FieldType::Children {
            if let Some(child) = f.object.as_deref().and_then(|c| cat.get(c)) {
                m.insert(f.name.clone(), json!([create_example(cat, child)]));
            }
            continue;
        }
        if !f.is_writable() {
            continue;
        }
        if let Some(v) = &f.example {
            m.insert(f.name.clone(), v.clone());
        } else if f.required && f.default.is_none() {
            m.insert(f.name.clone(), generated(f));
        }
    }
    Value::Object(m)
}

fn generated(f: &FieldDef) -> Value {
    let num = |fallback: &str| -> String {
        match &f.min {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => fallback.to_string(),
        }
    };
    match f.kind {
        FieldType::Text | FieldType::LongText => {
            let mut s = format!("Example {}", f.label().to_lowercase());
            if let Some(n) = f.max_length {
                s.truncate(n as usize);
            }
            json!(s)
        }
        FieldType::Email => json!("someone@example.com"),
        FieldType::Phone => json!("+385 1 234 5678"),
        FieldType::Url => json!("https://example.com"),
        FieldType::Integer => json!(num("1").parse::<i64>().unwrap_or(1)),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => json!(num("1")),
        FieldType::Boolean => json!(true),
        FieldType::Date => json!(f
            .min
            .as_ref()
            .and_then(|v| v.as_str())
            .unwrap_or("2026-01-15")),
        FieldType::Datetime => json!("2026-01-15T09:00:00Z"),
        FieldType::Picklist => json!(f.option_values().next().unwrap_or_default()),
        FieldType::MultiPicklist => json!([f.option_values().next().unwrap_or_default()]),
        FieldType::Reference => {
            json!(example_id(f.target.as_deref().unwrap_or_default()).to_string())
        }
        FieldType::Json => json!({}),
        FieldType::Children | FieldType::Formula | FieldType::Autonumber => Value::Null,
    }
}

//! Field values: the JSON Schema of one field, and normalisation of input into the
//! canonical JSON the engine stores and returns (decimals as strings at their scale,
//! dates as `YYYY-MM-DD`, datetimes in UTC, ids in lower case).

use crate::model::{FieldDef, FieldType, ObjectDef, Rounding};
use platform_plugin_api::Issue;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};
use std::str::FromStr;

/// Pattern of a decimal given as a string.
pub const DECIMAL_PATTERN: &str = r"^[-+]?[0-9]+(\.[0-9]+)?$";
/// Pattern of a phone number: digits, spaces and the usual separators, optional `+`.
pub const PHONE_PATTERN: &str = r"^\+?[0-9][0-9 ()./-]{2,31}$";

/// The JSON Schema of one stored field's value (children excluded), null allowed unless
/// `required`.
pub fn field_schema(f: &FieldDef) -> Value {
    let mut s = match f.kind {
        FieldType::Text | FieldType::LongText => {
            let mut s = json!({"type": "string"});
            if let Some(n) = f.max_length {
                s["maxLength"] = json!(n);
            }
            if let Some(p) = &f.pattern {
                s["pattern"] = json!(p);
            }
            s
        }
        FieldType::Email => {
            json!({"type": "string", "format": "email", "maxLength": f.max_length.unwrap_or(254)})
        }
        FieldType::Phone => json!({"type": "string", "pattern": PHONE_PATTERN}),
        FieldType::Url => {
            json!({"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": f.max_length.unwrap_or(2048)})
        }
        FieldType::Integer => {
            let mut s = json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX});
            if let Some(m) = &f.min {
                s["minimum"] = m.clone();
            }
            if let Some(m) = &f.max {
                s["maximum"] = m.clone();
            }
            s
        }
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            json!({"type": ["string", "number"], "pattern": DECIMAL_PATTERN})
        }
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Picklist => {
            json!({"type": "string", "enum": f.option_values().collect::<Vec<_>>()})
        }
        FieldType::MultiPicklist => json!({
            "type": "array", "uniqueItems": true,
            "items": {"type": "string", "enum": f.option_values().collect::<Vec<_>>()}
        }),
        FieldType::Reference => json!({"type": "string", "format": "uuid"}),
        FieldType::Autonumber | FieldType::Formula => json!({"type": "string"}),
        FieldType::Json | FieldType::Children => json!({}),
    };
    if !f.required {
        if let Some(t) = s.get("type").cloned() {
            s["type"] = match t {
                Value::String(one) => json!([one, "null"]),
                Value::Array(mut many) => {
                    many.push(json!("null"));
                    Value::Array(many)
                }
                other => other,
            };
            if let Some(Value::Array(opts)) = s.get_mut("enum") {
                opts.push(Value::Null);
            }
        }
    }
    s
}

/// Whether the record schema is for a create (or full replace) or a partial update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Patch,
}

/// The JSON Schema of a record's input: writable fields only, no additional properties,
/// children as arrays of their object's input. `child_of` resolves child objects.
pub fn record_schema<'a>(
    def: &ObjectDef,
    child_of: &dyn Fn(&str) -> Option<&'a ObjectDef>,
    mode: Mode,
) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    if def.child {
        props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
    }
    for f in def.fields.iter() {
        if f.kind == FieldType::Children {
            let items = f
                .object
                .as_deref()
                .and_then(child_of)
                .map(|c| record_schema(c, child_of, Mode::Create))
                .unwrap_or_else(|| json!({}));
            props.insert(f.name.clone(), json!({"type": "array", "items": items}));
            continue;
        }
        if !f.is_writable() {
            continue;
        }
        props.insert(f.name.clone(), field_schema(f));
        if mode == Mode::Create && f.required && f.default.is_none() {
            required.push(f.name.clone());
        }
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// Normalises one value that passed the field's JSON Schema. `path` names it in issues.
pub fn normalize(f: &FieldDef, path: &str, v: &Value) -> Result<Value, Issue> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let bad = |rule: &str, msg: String| Issue::new(path, rule, msg, v.clone());
    match f.kind {
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            let text = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad("type", "must be a decimal number".into())),
            };
            let mut d = Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| bad("type", "must be a decimal number".into()))?;
            let scale = f.scale();
            if d.scale() > scale {
                match f.rounding.unwrap_or_default() {
                    Rounding::HalfUp => {
                        d = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
                    }
                    Rounding::HalfEven => {
                        d = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointNearestEven)
                    }
                    Rounding::Reject => {
                        return Err(bad(
                            "scale",
                            format!("must have at most {scale} decimal places"),
                        ))
                    }
                }
            }
            d.rescale(scale);
            let int_digits = d.trunc().abs().to_string().trim_start_matches('0').len() as u32;
            if int_digits > f.precision() - scale {
                return Err(bad(
                    "precision",
                    format!(
                        "must have at most {} digits before the decimal point",
                        f.precision() - scale
                    ),
                ));
            }
            if let Some(min) = f.min.as_ref().and_then(dec) {
                if d < min {
                    return Err(bad("minimum", format!("must be at least {min}")));
                }
            }
            if let Some(max) = f.max.as_ref().and_then(dec) {
                if d > max {
                    return Err(bad("maximum", format!("must be at most {max}")));
                }
            }
            Ok(Value::String(d.to_string()))
        }
        FieldType::Date => {
            let s = v.as_str().unwrap_or_default();
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| bad("format", "must be a date as YYYY-MM-DD".into()))?;
            let limit = |l: &Option<Value>| {
                l.as_ref()
                    .and_then(|x| x.as_str())
                    .and_then(|x| chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d").ok())
            };
            if let Some(min) = limit(&f.min) {
                if d < min {
                    return Err(bad("minimum", format!("must be on or after {min}")));
                }
            }
            if let Some(max) = limit(&f.max) {
                if d > max {
                    return Err(bad("maximum", format!("must be on or before {max}")));
                }
            }
            Ok(Value::String(d.to_string()))
        }
        FieldType::Datetime => {
            let s = v.as_str().unwrap_or_default();
            let d = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| bad("format", "must be an RFC 3339 date and time".into()))?
                .with_timezone(&chrono::Utc);
            // Bounds are datetimes, or dates meaning midnight UTC.
            let limit = |l: &Option<Value>| {
                let s = l.as_ref()?.as_str()?;
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .ok()
                    .or_else(|| {
                        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                            .ok()?
                            .and_hms_opt(0, 0, 0)
                            .map(|n| n.and_utc())
                    })
            };
            if let Some(min) = limit(&f.min) {
                if d < min {
                    return Err(bad(
                        "minimum",
                        format!("must be at or after {}", format_datetime(min)),
                    ));
                }
            }
            if let Some(max) = limit(&f.max) {
                if d > max {
                    return Err(bad(
                        "maximum",
                        format!("must be at or before {}", format_datetime(max)),
                    ));
                }
            }
            Ok(Value::String(format_datetime(d)))
        }
        FieldType::Reference => Ok(Value::String(
            v.as_str().unwrap_or_default().to_ascii_lowercase(),
        )),
        _ => Ok(v.clone()),
    }
}

/// The one way datetimes are written in responses: UTC, microseconds, `Z`.
pub fn format_datetime(d: chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// Checks a literal from a definition (a default or an example) against its field.
pub fn check_literal(f: &FieldDef, v: &Value) -> Result<(), String> {
    if matches!(
        f.kind,
        FieldType::Children | FieldType::Formula | FieldType::Autonumber
    ) {
        return Err(format!(
            "a {} field takes no literal value",
            f.kind.as_str()
        ));
    }
    let schema = field_schema(f);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())?;
    if let Some(e) = validator.iter_errors(v).next() {
        return Err(e.to_string());
    }
    normalize(f, "", v).map(|_| ()).map_err(|i| i.message)
}

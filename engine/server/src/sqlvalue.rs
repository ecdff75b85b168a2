//! Typed values between canonical JSON and PostgreSQL: what to bind for a field's JSON
//! value, and how to read a column back into JSON. Money never passes through a float.

use chrono::{DateTime, NaiveDate, Utc};
use platform_metadata::values::format_datetime;
use platform_metadata::{FieldDef, FieldType};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use std::str::FromStr;
use uuid::Uuid;

/// One bound parameter.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Dec(Option<Decimal>),
    Bool(Option<bool>),
    Date(Option<NaiveDate>),
    Ts(Option<DateTime<Utc>>),
    Uuid(Option<Uuid>),
    TextArr(Option<Vec<String>>),
    Json(Option<Value>),
    UuidArr(Vec<Uuid>),
    IntArr(Vec<i64>),
    DecArr(Vec<Decimal>),
    DateArr(Vec<NaiveDate>),
    TsArr(Vec<DateTime<Utc>>),
    BoolArr(Vec<bool>),
    TextList(Vec<String>),
}

pub fn bind<'q>(q: Query<'q, Postgres, PgArguments>, b: Bind) -> Query<'q, Postgres, PgArguments> {
    match b {
        Bind::Text(v) => q.bind(v),
        Bind::Int(v) => q.bind(v),
        Bind::Dec(v) => q.bind(v),
        Bind::Bool(v) => q.bind(v),
        Bind::Date(v) => q.bind(v),
        Bind::Ts(v) => q.bind(v),
        Bind::Uuid(v) => q.bind(v),
        Bind::TextArr(v) => q.bind(v),
        Bind::Json(v) => q.bind(v.map(sqlx::types::Json)),
        Bind::UuidArr(v) => q.bind(v),
        Bind::IntArr(v) => q.bind(v),
        Bind::DecArr(v) => q.bind(v),
        Bind::DateArr(v) => q.bind(v),
        Bind::TsArr(v) => q.bind(v),
        Bind::BoolArr(v) => q.bind(v),
        Bind::TextList(v) => q.bind(v),
    }
}

/// The storage kind of a field (formulas store their result type).
pub fn storage(f: &FieldDef) -> FieldType {
    match f.kind {
        FieldType::Formula => f.returns.unwrap_or(FieldType::Text),
        k => k,
    }
}

/// The parameter for a canonical JSON value of `f` (already normalised by the write
/// pipeline, so a value that does not parse is a bug, reported as an error).
pub fn to_bind(f: &FieldDef, v: &Value) -> Result<Bind, String> {
    let bad = || {
        format!(
            "value {v} does not fit field `{}` ({})",
            f.name,
            f.kind.as_str()
        )
    };
    let null = v.is_null();
    Ok(match storage(f) {
        FieldType::Integer => Bind::Int(if null {
            None
        } else {
            Some(v.as_i64().ok_or_else(bad)?)
        }),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => Bind::Dec(if null {
            None
        } else {
            Some(Decimal::from_str(v.as_str().ok_or_else(bad)?).map_err(|_| bad())?)
        }),
        FieldType::Boolean => Bind::Bool(if null {
            None
        } else {
            Some(v.as_bool().ok_or_else(bad)?)
        }),
        FieldType::Date => Bind::Date(if null {
            None
        } else {
            Some(
                NaiveDate::parse_from_str(v.as_str().ok_or_else(bad)?, "%Y-%m-%d")
                    .map_err(|_| bad())?,
            )
        }),
        FieldType::Datetime => Bind::Ts(if null {
            None
        } else {
            Some(
                DateTime::parse_from_rfc3339(v.as_str().ok_or_else(bad)?)
                    .map_err(|_| bad())?
                    .with_timezone(&Utc),
            )
        }),
        FieldType::Reference => Bind::Uuid(if null {
            None
        } else {
            Some(Uuid::parse_str(v.as_str().ok_or_else(bad)?).map_err(|_| bad())?)
        }),
        FieldType::MultiPicklist => Bind::TextArr(if null {
            None
        } else {
            Some(
                v.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|x| x.as_str().map(String::from).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            )
        }),
        FieldType::Json => Bind::Json(if null { None } else { Some(v.clone()) }),
        _ => Bind::Text(if null {
            None
        } else {
            Some(v.as_str().ok_or_else(bad)?.to_string())
        }),
    })
}

/// Reads column `col` of `row` as the canonical JSON of `f`.
pub fn decode(row: &PgRow, col: &str, f: &FieldDef) -> Result<Value, sqlx::Error> {
    Ok(match storage(f) {
        FieldType::Integer => row
            .try_get::<Option<i64>, _>(col)?
            .map(Value::from)
            .unwrap_or(Value::Null),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => row
            .try_get::<Option<Decimal>, _>(col)?
            .map(|mut d| {
                d.rescale(f.scale());
                Value::String(d.to_string())
            })
            .unwrap_or(Value::Null),
        FieldType::Boolean => row
            .try_get::<Option<bool>, _>(col)?
            .map(Value::Bool)
            .unwrap_or(Value::Null),
        FieldType::Date => row
            .try_get::<Option<NaiveDate>, _>(col)?
            .map(|d| Value::String(d.to_string()))
            .unwrap_or(Value::Null),
        FieldType::Datetime => row
            .try_get::<Option<DateTime<Utc>>, _>(col)?
            .map(|d| Value::String(format_datetime(d)))
            .unwrap_or(Value::Null),
        FieldType::Reference => row
            .try_get::<Option<Uuid>, _>(col)?
            .map(|u| Value::String(u.to_string()))
            .unwrap_or(Value::Null),
        FieldType::MultiPicklist => row
            .try_get::<Option<Vec<String>>, _>(col)?
            .map(|v| Value::Array(v.into_iter().map(Value::String).collect()))
            .unwrap_or(Value::Null),
        FieldType::Json => row
            .try_get::<Option<sqlx::types::Json<Value>>, _>(col)?
            .map(|j| j.0)
            .unwrap_or(Value::Null),
        _ => row
            .try_get::<Option<String>, _>(col)?
            .map(Value::String)
            .unwrap_or(Value::Null),
    })
}

/// Parses a filter or cursor value given as text into the parameter for `f`.
pub fn parse_scalar(f: &FieldDef, s: &str) -> Result<Bind, String> {
    let v = match storage(f) {
        FieldType::Integer => Value::from(
            s.parse::<i64>()
                .map_err(|_| format!("`{s}` is not an integer"))?,
        ),
        FieldType::Boolean => Value::Bool(match s {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(format!("`{s}` is not true or false")),
        }),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => {
            Decimal::from_str(s).map_err(|_| format!("`{s}` is not a decimal number"))?;
            Value::String(s.to_string())
        }
        FieldType::Date => {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))?;
            Value::String(s.to_string())
        }
        FieldType::Datetime => {
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| format!("`{s}` is not an RFC 3339 datetime"))?;
            Value::String(s.to_string())
        }
        FieldType::Reference => {
            Uuid::parse_str(s).map_err(|_| format!("`{s}` is not a UUID"))?;
            Value::String(s.to_string())
        }
        FieldType::MultiPicklist => Value::Array(vec![Value::String(s.to_string())]),
        _ => Value::String(s.to_string()),
    };
    to_bind(f, &v)
}

/// Turns a list of scalar parameters of one field into one array parameter.
pub fn to_array(items: Vec<Bind>) -> Bind {
    macro_rules! collect {
        ($variant:ident, $arr:ident) => {
            Bind::$arr(
                items
                    .into_iter()
                    .filter_map(|b| {
                        if let Bind::$variant(Some(x)) = b {
                            Some(x)
                        } else {
                            None
                        }
                    })
                    .collect(),
            )
        };
    }
    match items.first() {
        Some(Bind::Int(_)) => collect!(Int, IntArr),
        Some(Bind::Dec(_)) => collect!(Dec, DecArr),
        Some(Bind::Date(_)) => collect!(Date, DateArr),
        Some(Bind::Ts(_)) => collect!(Ts, TsArr),
        Some(Bind::Uuid(_)) => collect!(Uuid, UuidArr),
        Some(Bind::Bool(_)) => collect!(Bool, BoolArr),
        _ => collect!(Text, TextList),
    }
}

//! Sandboxed expressions (rules, formulas, defaults): minijinja expressions compiled once
//! per metadata version.
//!
//! An expression sees the record's fields by name. Decimal fields are handed to expressions
//! as numbers for comparisons (`quantity > 0`); money arithmetic never happens in
//! expressions, it belongs to compute plugins working on `rust_decimal`.

use minijinja::{Environment, Expression, Value};
use std::collections::{BTreeSet, HashSet};

/// The environment every expression is compiled in: builtins plus a few functions.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function("today", || {
        Value::from(chrono::Utc::now().date_naive().to_string())
    });
    env.add_function("now", || {
        Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    });
    env.add_function(
        "add_days",
        |date: String, days: i64| -> Result<Value, minijinja::Error> {
            let d = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })?;
            Ok(Value::from((d + chrono::Duration::days(days)).to_string()))
        },
    );
    env.set_fuel(Some(10_000));
    env
}

const FUNCTIONS: &[&str] = &["today", "now", "add_days", "none", "true", "false"];

/// Compiles `source` and returns the field names it reads that are not in `known`.
pub fn check(source: &str, known: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let env = environment();
    let expr = env.compile_expression(source).map_err(|e| e.to_string())?;
    let vars: HashSet<String> = expr.undeclared_variables(false);
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter(|v| !known.contains(v) && !FUNCTIONS.contains(&v.as_str()))
        .collect();
    unknown.sort();
    Ok(unknown)
}

/// Expressions of one object, compiled against one shared environment.
pub struct CompiledExprs {
    cell: ExprCell,
}

type ExprVec<'a> = Vec<Expression<'a, 'static>>;

self_cell::self_cell!(
    struct ExprCell {
        owner: Environment<'static>,
        #[covariant]
        dependent: ExprVec,
    }
);

impl CompiledExprs {
    pub fn compile(sources: &[String]) -> Result<Self, String> {
        let cell = ExprCell::try_new(environment(), |env| {
            sources
                .iter()
                .map(|s| {
                    env.compile_expression_owned(s.clone())
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, String>>()
        })?;
        Ok(CompiledExprs { cell })
    }

    /// Evaluates expression number `index` against `ctx`.
    pub fn eval(&self, index: usize, ctx: &Value) -> Result<Value, String> {
        self.cell.with_dependent(|_, exprs| match exprs.get(index) {
            Some(e) => e.eval(ctx).map_err(|e| e.to_string()),
            None => Err(format!("no expression {index}")),
        })
    }
}

impl std::fmt::Debug for CompiledExprs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledExprs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_reported() {
        let known: BTreeSet<String> = ["quantity".to_string()].into();
        assert_eq!(
            check("quantity > 0 and price > 1", &known).unwrap(),
            vec!["price".to_string()]
        );
        assert!(check("quantity >", &known).is_err());
    }

    #[test]
    fn compiled_expressions_evaluate() {
        let c = CompiledExprs::compile(&["a + 1 > 2".into(), "add_days('2026-01-30', 3)".into()])
            .unwrap();
        let ctx = Value::from_serialize(serde_json::json!({"a": 5}));
        assert!(c.eval(0, &ctx).unwrap().is_true());
        assert_eq!(c.eval(1, &ctx).unwrap().to_string(), "2026-02-02");
    }
}

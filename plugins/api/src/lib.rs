//! The plugin API: the hooks the runtime calls on a record, and a registry by name.
//!
//! A plugin sees a record as JSON (`serde_json::Map`), children embedded as arrays under
//! their field names, exactly as the REST API shows it. Money and other decimals are
//! JSON strings (`"12.50"`): read them with [`get_decimal`], write them with
//! [`set_decimal`], and never go through a float.
//!
//! The runtime calls, for every create and update, in this order:
//! 1. it refuses unknown, system and read-only fields, checks the input against the
//!    object's JSON Schema, normalises values (decimals to their scale) and applies
//!    defaults; any problem stops here with a 422;
//! 2. each hook's [`Plugin::compute`], in the order the definition lists them;
//! 3. formulas, required fields and the definition's rules, on the record and its lines;
//! 4. each hook's [`Plugin::validate`], whose issues join the same 422 response.
//!
//! Values a compute hook writes are not checked again against scale, minimum or maximum:
//! write them at the field's scale ([`set_decimal`]) and check them in `validate`. Hooks
//! run on the object being written (the parent); a line object declares none.
//!
//! A plugin holds no connection and does no I/O in these hooks, so it is unit-tested with
//! plain JSON (see the pricing plugin's tests).

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// A JSON object: one record.
pub type Record = Map<String, Value>;

/// One problem with the input, reported to the client in a 422.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Issue {
    /// Path of the field: `quantity`, `lines[1].quantity`; empty for the whole record.
    pub field: String,
    /// The rule that failed: `required`, `minimum`, `type`, or a rule or plugin name.
    pub rule: String,
    pub message: String,
    /// The offending value as given (null when absent).
    pub value: Value,
}

impl Issue {
    pub fn new(
        field: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
        value: Value,
    ) -> Self {
        Issue {
            field: field.into(),
            rule: rule.into(),
            message: message.into(),
            value,
        }
    }
}

/// What a hook knows about the call.
#[derive(Debug, Clone)]
pub struct HookContext<'a> {
    /// The object being written, e.g. `offer`.
    pub object: &'a str,
    /// The hook's `config` from the definition (null when absent).
    pub config: &'a Value,
    /// `create` or `update`.
    pub operation: Operation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// An error that stops the write: the plugin could not do its job (bad config, a value
/// it cannot work with). Input problems are better reported as [`Issue`]s.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("invalid input: {0:?}")]
    Invalid(Vec<Issue>),
    #[error("plugin misconfigured: {0}")]
    Config(String),
}

/// A plugin. Every hook has a default that does nothing, so a plugin implements only
/// what it needs.
pub trait Plugin: Send + Sync {
    /// The name definitions use in `hooks[].plugin`.
    fn name(&self) -> &'static str;

    /// Checks the hook's `config` when definitions are loaded; an error refuses the
    /// definition.
    fn check_config(&self, _config: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Computes derived values (prices, totals) in place, before validation.
    fn compute(&self, _ctx: &HookContext<'_>, _record: &mut Record) -> Result<(), PluginError> {
        Ok(())
    }

    /// Extra checks after the definition's own; every issue is reported.
    fn validate(&self, _ctx: &HookContext<'_>, _record: &Record) -> Vec<Issue> {
        Vec::new()
    }
}

/// Plugins by name. The binary builds one at start with every compiled-in plugin.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<&'static str, Arc<dyn Plugin>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, plugin: impl Plugin + 'static) -> &mut Self {
        self.plugins.insert(plugin.name(), Arc::new(plugin));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.plugins.keys().copied()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.plugins.keys()).finish()
    }
}

/// Reads a decimal field given as a JSON string or number. `Ok(None)` when absent or
/// null; an [`Issue`] (rule `type`) when it is not a decimal.
pub fn get_decimal(record: &Record, field: &str) -> Result<Option<Decimal>, Issue> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Decimal::from_str(s.trim()).map(Some).map_err(|_| {
            Issue::new(
                field,
                "type",
                "must be a decimal number",
                Value::String(s.clone()),
            )
        }),
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(|_| {
                Issue::new(
                    field,
                    "type",
                    "must be a decimal number",
                    Value::Number(n.clone()),
                )
            }),
        Some(v) => Err(Issue::new(
            field,
            "type",
            "must be a decimal number",
            v.clone(),
        )),
    }
}

/// Writes a decimal as a JSON string with exactly `scale` digits after the point.
pub fn set_decimal(record: &mut Record, field: &str, value: Decimal, scale: u32) {
    let mut v = value;
    v.rescale(scale);
    record.insert(field.to_string(), Value::String(v.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_read_from_strings_and_numbers_and_write_at_scale() {
        let mut r: Record = json!({"a": "12.5", "b": 3, "c": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(get_decimal(&r, "a").unwrap(), Some(Decimal::new(125, 1)));
        assert_eq!(get_decimal(&r, "b").unwrap(), Some(Decimal::new(3, 0)));
        assert_eq!(get_decimal(&r, "missing").unwrap(), None);
        assert_eq!(get_decimal(&r, "c").unwrap_err().rule, "type");
        set_decimal(&mut r, "a", Decimal::new(125, 1), 2);
        assert_eq!(r["a"], json!("12.50"));
    }
}

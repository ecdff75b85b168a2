//! The definition file format: what one file in `metadata/objects/` deserialises into.
//!
//! Only what differs from a default is written in a file; every attribute here has a
//! default. The JSON Schema in `metadata/object.schema.json` describes the same format
//! for editors and is checked first, so these types only see structurally valid input.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One business object: a table, a REST resource, a form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectDef {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The owning service; also the PostgreSQL schema that holds the table.
    pub service: String,
    /// A line object, only written and read through the parent's `children` field.
    #[serde(default, skip_serializing_if = "is_false")]
    pub child: bool,
    /// The field shown when a record is referenced (search results, expanded references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_field: Option<String>,
    pub fields: Vec<FieldDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDef>,
    #[serde(default, skip_serializing_if = "Layouts::is_empty")]
    pub layouts: Layouts,
    /// Role name -> allowed actions. The role `admin` may always do everything.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, Vec<Action>>,
    /// Plugin hooks, run in the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookDef>,
    /// The states a record moves through (a picklist field) and the named transitions
    /// between them; each transition is a domain event `<service>.<object>.<event>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleDef {
    /// The picklist field that holds the state; its default is the initial state.
    pub field: String,
    pub transitions: Vec<TransitionDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    /// The action's name, in the URL: `.../records/{id}/transitions/{name}`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// States it may start from.
    pub from: Vec<String>,
    pub to: String,
    /// The event's last word (`offers.offer.<event>`); the target state when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Roles that may take it; any role that may update the object when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl TransitionDef {
    pub fn event(&self) -> &str {
        self.event.as_deref().unwrap_or(&self.to)
    }

    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| humanize(&self.name))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Money,
    Percent,
    Boolean,
    Date,
    Datetime,
    Email,
    Phone,
    Url,
    Picklist,
    MultiPicklist,
    Reference,
    Children,
    Formula,
    Autonumber,
    Json,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Percent => "percent",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::MultiPicklist => "multi_picklist",
            FieldType::Reference => "reference",
            FieldType::Children => "children",
            FieldType::Formula => "formula",
            FieldType::Autonumber => "autonumber",
            FieldType::Json => "json",
        }
    }

    /// Types stored as `numeric` and carried as `rust_decimal::Decimal`.
    pub fn is_decimal(self) -> bool {
        matches!(
            self,
            FieldType::Decimal | FieldType::Money | FieldType::Percent
        )
    }

    /// Types stored as `text`.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::Autonumber
        )
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    #[default]
    Restrict,
    Cascade,
    SetNull,
}

impl OnDelete {
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

/// How a decimal value is brought to its scale.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Half away from zero: the commercial rounding most invoices use.
    #[default]
    HalfUp,
    /// Half to even (banker's rounding).
    HalfEven,
    /// Refuse a value with more decimals than the scale.
    Reject,
}

/// A picklist option: a bare string, or a value with its label.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PicklistOption {
    Value(String),
    Labelled {
        value: String,
        label: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
    },
}

impl PicklistOption {
    pub fn value(&self) -> &str {
        match self {
            PicklistOption::Value(v) => v,
            PicklistOption::Labelled { value, .. } => value,
        }
    }
    pub fn label(&self) -> &str {
        match self {
            PicklistOption::Value(v) => v,
            PicklistOption::Labelled { label, .. } => label,
        }
    }
}

/// A default: a literal JSON value, or `{"expr": "..."}` evaluated at create time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DefaultValue {
    Expr { expr: String },
    Literal(Value),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub indexed: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
    /// Lower bound: a number for numeric types, an ISO date for dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// A regular expression a text value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Total digits of a decimal (default 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// Digits after the point (money default 2, percent 4, decimal 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding: Option<Rounding>,
    /// For money: the field of the same object holding the ISO currency code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<PicklistOption>>,
    /// For reference: the target object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
    /// For children: the child (line) object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// For formula: a minijinja expression over the record's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// For formula: the type of the result (text, integer, boolean, date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<FieldType>,
    /// For autonumber: e.g. `OF-{YYYY}-{seq:5}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// For autonumber: numbers without gaps, in commit order (invoices). Costs a lock
    /// per tenant held until each create commits; without it, numbers are unique and
    /// increasing per process but a failed or abandoned create leaves a gap.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gapless: bool,
    /// A value used in generated examples (OpenAPI); must be valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    /// A tenant's custom field: stored in the record's `custom` JSONB column, visible to
    /// that tenant only. Set by the engine, never written in a definition file.
    #[serde(default, skip_serializing_if = "is_false")]
    pub custom: bool,
}

impl FieldDef {
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| humanize(&self.name))
    }

    /// Whether the field is stored in a column of the object's table.
    pub fn has_column(&self) -> bool {
        self.kind != FieldType::Children && !self.custom
    }

    /// Whether the field holds a value of the record (a column or a custom field).
    pub fn is_stored(&self) -> bool {
        self.kind != FieldType::Children
    }

    /// Whether a client may write the field.
    pub fn is_writable(&self) -> bool {
        !self.read_only
            && !matches!(
                self.kind,
                FieldType::Formula | FieldType::Autonumber | FieldType::Children
            )
    }

    pub fn scale(&self) -> u32 {
        self.scale.unwrap_or(match self.kind {
            FieldType::Percent => 4,
            _ => 2,
        })
    }

    pub fn precision(&self) -> u32 {
        self.precision.unwrap_or(18)
    }

    pub fn option_values(&self) -> impl Iterator<Item = &str> {
        self.options.iter().flatten().map(|o| o.value())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    /// A minijinja expression that must be true for the record to be valid.
    pub expression: String,
    pub message: String,
    /// The field the error is reported on (else the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Layouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<FormLayout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListLayout>,
}

impl Layouts {
    pub fn is_empty(&self) -> bool {
        self.form.is_none() && self.list.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FormLayout {
    pub sections: Vec<FormSection>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FormSection {
    pub label: String,
    #[serde(default = "one")]
    pub columns: u8,
    pub fields: Vec<String>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListLayout {
    pub columns: Vec<String>,
    /// e.g. `-created_at`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sort: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HookDef {
    /// The registered plugin's name.
    pub plugin: String,
    /// Plugin-specific settings, handed to every call.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
}

/// `unit_price` -> `Unit price`.
pub fn humanize(name: &str) -> String {
    let s = name.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

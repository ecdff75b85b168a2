//! View models: schemas and records turned into what a template lays out. Every field
//! becomes one [`field_view`]: its input name (`lines[1].quantity`, the same path the
//! API names in a validation issue), a DOM id, the value as an input holds it, the text
//! a reader sees, options, and the messages of the issues that name its path.

use crate::url::{encode, with_query};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Widgets with a template of their own (see `templates/widgets/`).
const WIDGETS: &[&str] = &[
    "text",
    "textarea",
    "integer",
    "decimal",
    "money",
    "checkbox",
    "date",
    "datetime",
    "email",
    "tel",
    "url",
    "select",
    "multiselect",
    "lookup",
    "lines",
    "readonly",
    "json",
];

/// What every signed-in page shows around its content.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chrome {
    /// The signed-in user's display name.
    pub user: String,
    pub username: String,
    /// The token every POST form carries (see the engine's `web` module).
    pub csrf: String,
    /// The objects the user may read, in menu order.
    pub nav: Vec<NavItem>,
    /// The object the page is about, highlighted in the menu.
    pub current: Option<String>,
    /// Whether the user may change custom fields (shows the admin pages).
    pub can_admin: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NavItem {
    pub object: String,
    pub label: String,
    pub description: Option<String>,
}

/// One validation issue for the form: the API's `field` path and its message.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// How a record form is shown.
#[derive(Debug, Clone, Default)]
pub struct FormOptions {
    /// The record's id; None for a new record.
    pub id: Option<String>,
    /// Issues from the last submit (nothing was saved).
    pub errors: Vec<FieldError>,
    /// Display titles of referenced records, by input path (`customer`,
    /// `lines[0].product`).
    pub titles: Map<String, Value>,
    /// A success message ("Saved").
    pub flash: Option<String>,
    /// A problem that belongs to no field (a version conflict, a refused action).
    pub alert: Option<String>,
    /// Sent as the create request's Idempotency-Key (new records only).
    pub idempotency_key: Option<String>,
}

/// Where a list page is: search, filters, sort and the page cursors.
#[derive(Debug, Clone, Default)]
pub struct ListState {
    /// `/app/o/{object}`
    pub base: String,
    /// Quick search on the title field.
    pub q: String,
    /// Filters in the API's syntax, `field:op:value`.
    pub filters: Vec<String>,
    pub sort: Option<String>,
    /// The cursor of this page (None: the first page).
    pub cursor: Option<String>,
    /// Cursors of the pages before this one (`-` stands for the first page).
    pub trail: Vec<String>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
    /// A refused query (a bad filter value), shown instead of rows.
    pub error: Option<String>,
    pub flash: Option<String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dom_id(path: &str) -> String {
    let mut id = String::from("f-");
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        });
    }
    id.trim_end_matches('-').to_string()
}

/// `1234567.5` -> `1,234,567.5` (decimals kept exactly as given).
pub fn group_thousands(n: &str) -> String {
    let (sign, rest) = match n.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", n),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    if !int.chars().all(|c| c.is_ascii_digit()) {
        return n.to_string();
    }
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// `12.500` -> `12.5`, `25.0000` -> `25`: decimals and percents without the zeros
/// their scale pads them with (money keeps its cents).
pub fn trim_decimal(n: &str) -> String {
    if !n.contains('.')
        || !n
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return n.to_string();
    }
    n.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `2026-11-24T21:59:49.044286Z` -> `2026-11-24 21:59 UTC`.
pub fn short_datetime(t: &str) -> String {
    if t.len() >= 16 && t.as_bytes().get(10) == Some(&b'T') {
        format!("{} {} UTC", &t[..10], &t[11..16])
    } else {
        t.to_string()
    }
}

fn option_label(fs: &Value, value: &str) -> String {
    fs["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["value"] == value))
        .map(|o| s(&o["label"]))
        .unwrap_or_else(|| value.to_string())
}

fn option_color(fs: &Value, value: &str) -> Option<String> {
    fs["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["value"] == value))
        .and_then(|o| o["color"].as_str().map(String::from))
}

/// The title of a referenced record: an expanded object's title field, or a title
/// given by the page.
fn ref_title(fs: &Value, value: &Value, title: Option<&Value>) -> String {
    if let Some(t) = title.filter(|t| !t.is_null()) {
        return s(t);
    }
    if let Value::Object(m) = value {
        let tf = fs["target"]["title_field"].as_str().unwrap_or("id");
        return m
            .get(tf)
            .map(s)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| m.get("id").map(s).unwrap_or_default());
    }
    s(value)
}

fn ref_id(value: &Value) -> String {
    match value {
        Value::Object(m) => m.get("id").map(s).unwrap_or_default(),
        v => s(v),
    }
}

/// The text a reader sees for a value.
pub fn display(fs: &Value, value: &Value, title: Option<&Value>, currency: &str) -> String {
    if value.is_null() || value == "" {
        return String::new();
    }
    match fs["type"].as_str().unwrap_or("text") {
        "boolean" => match value.as_bool() {
            Some(true) => "Yes".into(),
            Some(false) => "No".into(),
            None => s(value),
        },
        "money" => {
            let n = group_thousands(&s(value));
            if currency.is_empty() {
                n
            } else {
                format!("{n} {currency}")
            }
        }
        "decimal" => group_thousands(&trim_decimal(&s(value))),
        "integer" => group_thousands(&s(value)),
        "percent" => format!("{} %", trim_decimal(&s(value))),
        "picklist" => option_label(fs, &s(value)),
        "multi_picklist" => value
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| option_label(fs, &s(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| s(value)),
        "reference" => ref_title(fs, value, title),
        "datetime" => short_datetime(&s(value)),
        "children" => {
            let n = value.as_array().map(Vec::len).unwrap_or(0);
            format!("{n} line{}", if n == 1 { "" } else { "s" })
        }
        "json" => value.to_string(),
        _ => s(value),
    }
}

/// Whether a field is shown, not edited. Lines (children) are written with their parent
/// record, though the schema marks them read-only as fields of their own.
pub fn is_read_only(fs: &Value) -> bool {
    fs["type"] != "children"
        && (fs["read_only"].as_bool().unwrap_or(false) || fs["widget"] == "readonly")
}

fn is_numeric(fs: &Value) -> bool {
    matches!(
        fs["type"].as_str(),
        Some("money" | "decimal" | "integer" | "percent")
    )
}

/// The currency a money field is shown in: its `currency_field`'s value, else the
/// page's currency (lines show their parent's).
fn currency_of(fs: &Value, record: &Value, fallback: &str) -> String {
    if fs["type"] != "money" {
        return String::new();
    }
    fs["currency_field"]
        .as_str()
        .and_then(|c| record.get(c))
        .map(s)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

struct Ctx<'a> {
    errors: &'a [FieldError],
    titles: &'a Map<String, Value>,
    currency: String,
    is_new: bool,
    /// Whether the caller may save this form; if not, every field is shown, not edited.
    editable: bool,
}

/// One field as a template renders it; `path` is its input name.
fn field_view(
    fs: &Value,
    path: &str,
    value: &Value,
    record: &Value,
    cx: &Ctx,
    compact: bool,
) -> Value {
    let name = s(&fs["name"]);
    let read_only = is_read_only(fs) || !cx.editable;
    let mut widget = fs["widget"].as_str().unwrap_or("text").to_string();
    if read_only {
        widget = "readonly".into();
    } else if !WIDGETS.contains(&widget.as_str()) {
        widget = "text".into();
    }
    // A new record shows the literal default; expression defaults are applied on save.
    let value = if value.is_null() && cx.is_new && !read_only {
        fs.get("default").cloned().unwrap_or(Value::Null)
    } else {
        value.clone()
    };
    let id = dom_id(path);
    let errors: Vec<String> = cx
        .errors
        .iter()
        .filter(|e| e.field == path)
        .map(|e| e.message.clone())
        .collect();
    let help = s(&fs["help"]);
    let help_id = format!("{id}-help");
    let error_id = format!("{id}-error");
    let mut describedby = Vec::new();
    if !errors.is_empty() {
        describedby.push(error_id.clone());
    }
    if !help.is_empty() && !compact {
        describedby.push(help_id.clone());
    }
    let title = cx.titles.get(path);
    // In a table of lines the currency is in the column header, not in every cell.
    let currency = if compact {
        String::new()
    } else {
        currency_of(fs, record, &cx.currency)
    };
    let selected: Vec<String> = match &value {
        Value::Array(a) => a.iter().map(s).collect(),
        v => vec![s(v)],
    };
    let options: Vec<Value> = fs["options"]
        .as_array()
        .map(|opts| {
            opts.iter()
                .map(|o| {
                    let v = s(&o["value"]);
                    json!({"value": v, "label": s(&o["label"]), "color": o["color"], "selected": selected.contains(&v)})
                })
                .collect()
        })
        .unwrap_or_default();
    let input_value = match (fs["type"].as_str(), &value) {
        (Some("reference"), v) => ref_id(v),
        (Some("datetime"), Value::String(t)) => t.chars().take(16).collect(),
        (Some("decimal" | "percent"), Value::String(n)) => trim_decimal(n),
        (Some("json"), v) if !v.is_null() && !v.is_string() => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        (_, v) => s(v),
    };
    let scale = fs["scale"].as_u64().unwrap_or(2);
    let step = if fs["type"] == "integer" || scale == 0 {
        "1".to_string()
    } else {
        format!("0.{}1", "0".repeat(scale as usize - 1))
    };
    let mut view = json!({
        "name": name,
        "path": path,
        "id": id,
        "label": fs["label"],
        "help": help,
        "help_id": help_id,
        "error_id": error_id,
        "describedby": describedby.join(" "),
        "widget": widget,
        "type": fs["type"],
        "required": fs["required"].as_bool().unwrap_or(false),
        "read_only": read_only,
        "value": input_value,
        "checked": value.as_bool().unwrap_or(false),
        "display": display(fs, &value, title, &currency),
        "numeric": is_numeric(fs),
        "color": option_color(fs, &s(&value)),
        "options": options,
        "errors": errors,
        "currency": currency,
        "min": fs["min"],
        "max": fs["max"],
        "max_length": fs["max_length"],
        "step": step,
        "compact": compact,
        "placeholder": if fs.get("default_expression").is_some() && value.is_null() { "Set on save" } else { "" },
    });
    if fs["type"] == "reference" {
        view["target"] = fs["target"].clone();
        view["title"] = json!(ref_title(fs, &value, title));
        view["lookup_url"] = json!(format!(
            "/app/o/{}/lookup",
            fs["target"]["object"].as_str().unwrap_or("")
        ));
        view["record_href"] = if input_value.is_empty() {
            Value::Null
        } else {
            json!(format!(
                "/app/o/{}/{}",
                fs["target"]["object"].as_str().unwrap_or(""),
                input_value
            ))
        };
    }
    if fs["type"] == "children" {
        view["lines"] = lines_view(fs, path, &value, cx);
    }
    view
}

/// A children field: a table with a row per line and a template row for new lines.
fn lines_view(fs: &Value, path: &str, value: &Value, cx: &Ctx) -> Value {
    let lines = &fs["lines"];
    let child_fields = lines["fields"].as_object().cloned().unwrap_or_default();
    let columns: Vec<String> = lines["columns"]
        .as_array()
        .map(|c| c.iter().map(s).collect())
        .unwrap_or_default();
    let headers: Vec<Value> = columns
        .iter()
        .filter_map(|c| child_fields.get(c).map(|f| (c, f)))
        .map(|(c, f)| {
            let unit = if f["type"] == "money" { cx.currency.clone() } else { String::new() };
            let widget = if is_read_only(f) || !cx.editable { "readonly" } else { f["widget"].as_str().unwrap_or("text") };
            json!({"name": c, "label": f["label"], "numeric": is_numeric(f), "unit": unit, "widget": widget,
                   "required": f["required"].as_bool().unwrap_or(false) && !f["read_only"].as_bool().unwrap_or(false),
                   "read_only": f["read_only"].as_bool().unwrap_or(false)})
        })
        .collect();
    let row = |index: &str, line: &Value, new: bool| -> Value {
        let row_path = format!("{path}[{index}]");
        let row_cx = Ctx {
            errors: cx.errors,
            titles: cx.titles,
            currency: cx.currency.clone(),
            is_new: new,
            editable: cx.editable,
        };
        let cells: Vec<Value> = columns
            .iter()
            .filter_map(|c| child_fields.get(c).map(|f| (c, f)))
            .map(|(c, f)| {
                field_view(
                    f,
                    &format!("{row_path}.{c}"),
                    line.get(c).unwrap_or(&Value::Null),
                    line,
                    &row_cx,
                    true,
                )
            })
            .collect();
        let errors: Vec<String> = cx
            .errors
            .iter()
            .filter(|e| e.field == row_path)
            .map(|e| e.message.clone())
            .collect();
        json!({"index": index, "path": row_path, "dom": dom_id(&row_path), "id": line.get("id").map(s).unwrap_or_default(),
               "cells": cells, "errors": errors, "editable": cx.editable})
    };
    let mut rows: Vec<Value> = value
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, l)| row(&i.to_string(), l, false))
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() && cx.is_new {
        rows.push(row("0", &json!({}), true));
    }
    json!({
        "object": lines["object"],
        "label": lines["label"],
        "columns": headers,
        "rows": rows,
        "template": row("__INDEX__", &json!({}), true),
        "next_index": rows.len(),
        "editable": cx.editable,
    })
}

/// A human label for an issue's path: `Lines, row 2: Quantity`.
fn issue_label(schema: &Value, path: &str) -> String {
    let fields = &schema["fields"];
    let head = path.split(['[', '.']).next().unwrap_or(path);
    let Some(fs) = fields.get(head) else {
        return path.to_string();
    };
    let mut label = s(&fs["label"]);
    if let Some(rest) = path.strip_prefix(head).and_then(|r| r.strip_prefix('[')) {
        if let Some((i, tail)) = rest.split_once(']') {
            let row = i.parse::<usize>().map(|n| n + 1).unwrap_or(0);
            label = format!("{label}, row {row}");
            if let Some(col) = tail.strip_prefix('.') {
                let col_label = fs["lines"]["fields"][col]["label"]
                    .as_str()
                    .unwrap_or(col)
                    .to_string();
                label = format!("{label}: {col_label}");
            }
        }
    }
    label
}

/// The record form's context.
pub fn form_context(chrome: &Chrome, schema: &Value, record: &Value, opts: &FormOptions) -> Value {
    let is_new = opts.id.is_none();
    let fields = schema["fields"].as_object().cloned().unwrap_or_default();
    // The page's currency: the value of the first currency field any money field names.
    let currency = fields
        .values()
        .filter_map(|f| f["currency_field"].as_str())
        .find_map(|c| record.get(c).map(s).filter(|v| !v.is_empty()))
        .or_else(|| {
            fields
                .values()
                .filter_map(|f| f["currency_field"].as_str())
                .find_map(|c| fields.get(c).map(|f| s(&f["default"])))
        })
        .unwrap_or_default();
    let perms = &schema["permissions"];
    let editable = if is_new {
        perms["create"].as_bool().unwrap_or(false)
    } else {
        perms["update"].as_bool().unwrap_or(false)
    };
    let cx = Ctx {
        errors: &opts.errors,
        titles: &opts.titles,
        currency,
        is_new,
        editable,
    };
    let mut rendered: Vec<String> = Vec::new();
    let mut sections = Vec::new();
    for sec in schema["sections"].as_array().into_iter().flatten() {
        let mut views = Vec::new();
        for name in sec["fields"].as_array().into_iter().flatten() {
            let name = s(name);
            let Some(fs) = fields.get(&name) else {
                continue;
            };
            let value = record.get(&name).cloned().unwrap_or(Value::Null);
            // A new record has no computed values yet; they appear after saving.
            if is_new && is_read_only(fs) && value.is_null() {
                continue;
            }
            let v = field_view(fs, &name, &value, record, &cx, false);
            rendered.push(name.clone());
            if fs["type"] == "children" {
                for r in v["lines"]["rows"].as_array().into_iter().flatten() {
                    for c in r["cells"].as_array().into_iter().flatten() {
                        rendered.push(s(&c["path"]));
                    }
                    rendered.push(s(&r["path"]));
                }
            }
            views.push(v);
        }
        if views.is_empty() {
            continue;
        }
        let wide = views.iter().any(|v| v["widget"] == "lines");
        sections.push(json!({"label": sec["label"], "columns": if wide { 1 } else { sec["columns"].as_u64().unwrap_or(1).clamp(1, 3) }, "fields": views}));
    }
    let summary: Vec<Value> = opts
        .errors
        .iter()
        .map(|e| {
            let anchor = if rendered.contains(&e.field) {
                Some(format!("#{}", dom_id(&e.field)))
            } else {
                None
            };
            json!({"field": e.field, "label": if e.field.is_empty() { "Record".to_string() } else { issue_label(schema, &e.field) },
                   "message": e.message, "anchor": anchor})
        })
        .collect();
    let object = s(&schema["object"]);
    let title_field = schema["title_field"].as_str().unwrap_or("");
    let record_title = if is_new {
        format!("New {}", s(&schema["label"]).to_lowercase())
    } else {
        record
            .get(title_field)
            .map(s)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| s(&schema["label"]))
    };
    // Lifecycle actions, when the schema has a lifecycle: the transitions whose `from`
    // holds the record's current state.
    let mut actions = Vec::new();
    if let (false, Some(lc)) = (is_new, schema.get("lifecycle").filter(|l| l.is_object())) {
        let state = record
            .get(lc["field"].as_str().unwrap_or("status"))
            .map(s)
            .unwrap_or_default();
        for t in lc["transitions"].as_array().into_iter().flatten() {
            let allowed = t["from"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| s(x) == state));
            if allowed {
                actions.push(json!({"name": t["name"], "label": t.get("label").filter(|l| !l.is_null()).cloned().unwrap_or(t["name"].clone()), "to": t["to"]}));
            }
        }
    }
    json!({
        "chrome": chrome,
        "title": record_title,
        "object": object,
        "object_label": schema["label"],
        "plural_label": schema["plural_label"],
        "description": schema["description"],
        "id": opts.id,
        "is_new": is_new,
        "editable": editable,
        "can_delete": !is_new && perms["delete"].as_bool().unwrap_or(false),
        "version": record.get("version"),
        "status": record.get("status").map(|st| {
            let fs = &fields.get("status").cloned().unwrap_or(Value::Null);
            json!({"label": option_label(fs, &s(st)), "color": option_color(fs, &s(st))})
        }),
        "meta": if is_new { Value::Null } else { json!({
            "created_at": short_datetime(&record.get("created_at").map(s).unwrap_or_default()), "created_by": record.get("created_by"),
            "updated_at": short_datetime(&record.get("updated_at").map(s).unwrap_or_default()), "updated_by": record.get("updated_by")}) },
        "sections": sections,
        "errors": summary,
        "flash": opts.flash,
        "alert": opts.alert,
        "actions": actions,
        "idempotency_key": opts.idempotency_key,
        "action": match &opts.id { Some(id) => format!("/app/o/{object}/{id}"), None => format!("/app/o/{object}/new") },
    })
}

fn list_href(st: &ListState, sort: Option<&str>, cursor: Option<&str>, trail: &[String]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("q", st.q.as_str())];
    for f in &st.filters {
        pairs.push(("filter", f));
    }
    if let Some(s) = sort {
        pairs.push(("sort", s));
    }
    for t in trail {
        pairs.push(("trail", t));
    }
    if let Some(c) = cursor {
        pairs.push(("cursor", c));
    }
    with_query(&st.base, &pairs)
}

/// The list page's context.
pub fn list_context(chrome: &Chrome, schema: &Value, records: &[Value], st: &ListState) -> Value {
    let fields = schema["fields"].as_object().cloned().unwrap_or_default();
    let object = s(&schema["object"]);
    let sortable: Vec<String> = schema["sortable"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let current_sort = st
        .sort
        .clone()
        .unwrap_or_else(|| s(&schema["default_sort"]));
    let first_key = current_sort.split(',').next().unwrap_or("").to_string();
    let columns: Vec<String> = schema["columns"]
        .as_array()
        .map(|a| a.iter().map(s).filter(|c| fields.contains_key(c)).collect())
        .unwrap_or_default();
    let headers: Vec<Value> = columns
        .iter()
        .map(|c| {
            let fs = &fields[c];
            let state = if first_key == *c {
                "ascending"
            } else if first_key == format!("-{c}") {
                "descending"
            } else {
                "none"
            };
            let next = if state == "ascending" {
                format!("-{c}")
            } else {
                c.clone()
            };
            let href = sortable
                .contains(c)
                .then(|| list_href(st, Some(&next), None, &[]));
            json!({"name": c, "label": fs["label"], "numeric": is_numeric(fs), "sort": state, "href": href})
        })
        .collect();
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let id = r.get("id").map(s).unwrap_or_default();
            let cells: Vec<Value> = columns
                .iter()
                .map(|c| {
                    let fs = &fields[c];
                    let v = r.get(c).unwrap_or(&Value::Null);
                    let currency = currency_of(fs, r, "");
                    let badge = (fs["type"] == "picklist")
                        .then(|| option_color(fs, &s(v)))
                        .flatten();
                    json!({"display": display(fs, v, None, &currency), "numeric": is_numeric(fs), "badge": badge, "type": fs["type"]})
                })
                .collect();
            json!({"id": id, "href": format!("/app/o/{object}/{id}"), "cells": cells})
        })
        .collect();
    let chips: Vec<Value> = st
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut parts = f.splitn(3, ':');
            let (field, op, value) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let label = fields
                .get(field)
                .map(|fs| s(&fs["label"]))
                .unwrap_or_else(|| field.to_string());
            let shown = fields
                .get(field)
                .map(|fs| {
                    value
                        .split(',')
                        .map(|v| display(fs, &json!(v), None, ""))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| value.to_string());
            let mut rest = st.clone();
            rest.filters.remove(i);
            json!({"label": label, "op": op.replace('_', " "), "value": shown,
                   "remove_href": list_href(&rest, st.sort.as_deref(), None, &[])})
        })
        .collect();
    let filter_fields: Vec<Value> =
        schema["filters"]
            .as_object()
            .map(|m| {
                m.iter()
                .filter_map(|(name, ops)| {
                    let fs = fields.get(name)?;
                    Some(json!({"name": name, "label": fs["label"], "ops": ops, "type": fs["type"],
                        "options": fs["options"]}))
                })
                .collect()
            })
            .unwrap_or_default();
    let next_href = st.next_cursor.as_ref().map(|c| {
        let mut trail = st.trail.clone();
        trail.push(st.cursor.clone().unwrap_or_else(|| "-".into()));
        list_href(st, st.sort.as_deref(), Some(c), &trail)
    });
    let prev_href = st.trail.last().map(|last| {
        let trail = &st.trail[..st.trail.len() - 1];
        let cursor = (last != "-").then_some(last.as_str());
        list_href(st, st.sort.as_deref(), cursor, trail)
    });
    let title_field = schema["title_field"].as_str().unwrap_or("");
    let search_label = fields
        .get(title_field)
        .map(|f| s(&f["label"]))
        .unwrap_or_default();
    let hidden: Vec<Value> = st
        .filters
        .iter()
        .map(|f| json!({"name": "filter", "value": f}))
        .chain(st.sort.iter().map(|v| json!({"name": "sort", "value": v})))
        .collect();
    json!({
        "chrome": chrome,
        "title": schema["plural_label"],
        "object": object,
        "object_label": schema["label"],
        "columns": headers,
        "rows": rows,
        "chips": chips,
        "filter_fields": filter_fields,
        "q": st.q,
        "search_label": search_label,
        "can_search": !search_label.is_empty(),
        "hidden": hidden,
        "sort": st.sort,
        "next_href": next_href,
        "prev_href": prev_href,
        "page": st.trail.len() + 1,
        "error": st.error,
        "flash": st.flash,
        "can_create": schema["permissions"]["create"].as_bool().unwrap_or(false),
        "clear_href": if st.filters.is_empty() && st.q.is_empty() { Value::Null } else { json!(st.base) },
        "export_query": encode(&st.q),
    })
}

/// The history page's context: one row per audit event, newest first.
pub fn history_context(chrome: &Chrome, schema: &Value, record: &Value, history: &Value) -> Value {
    let fields = schema["fields"].as_object().cloned().unwrap_or_default();
    let currency = fields
        .values()
        .filter_map(|f| f["currency_field"].as_str())
        .find_map(|c| record.get(c).map(s))
        .unwrap_or_default();
    let events: Vec<Value> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let changes: Vec<Value> = e["changes"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, c)| {
                    let fs = fields.get(name).cloned().unwrap_or(json!({"label": name, "type": "text"}));
                    let cur = currency_of(&fs, record, &currency);
                    let shown = |v: &Value| {
                        // A reference shows its title when the record (read with its
                        // references expanded) still points at it.
                        let title = match record.get(name) {
                            Some(Value::Object(m)) if m.get("id") == Some(v) => Some(Value::Object(m.clone())),
                            _ => None,
                        };
                        display(&fs, title.as_ref().unwrap_or(v), None, &cur)
                    };
                    let mut after = shown(&c["after"]);
                    if fs["type"] == "children" && !c["before"].is_null() && after == shown(&c["before"]) {
                        after.push_str(", changed");
                    }
                    json!({"label": fs["label"], "before": shown(&c["before"]), "after": after})
                })
                .collect();
            json!({"action": e["action"], "version": e["record_version"], "user": e["actor"]["user"],
                   "at": display(&json!({"type": "datetime"}), &e["occurred_at"], None, ""),
                   "changes": changes})
        })
        .collect();
    let object = s(&schema["object"]);
    let title_field = schema["title_field"].as_str().unwrap_or("");
    let id = record.get("id").map(s).unwrap_or_default();
    json!({
        "chrome": chrome,
        "title": format!("History of {}", record.get(title_field).map(s).filter(|t| !t.is_empty()).unwrap_or_else(|| s(&schema["label"]))),
        "object": object,
        "plural_label": schema["plural_label"],
        "record_href": format!("/app/o/{object}/{id}"),
        "record_title": record.get(title_field).map(s).unwrap_or_default(),
        "events": events,
        "has_more": history["has_more"],
    })
}

/// Field types an administrator may give a custom field.
pub const CUSTOM_FIELD_TYPES: &[(&str, &str)] = &[
    ("text", "Text"),
    ("long_text", "Long text"),
    ("integer", "Whole number"),
    ("decimal", "Decimal number"),
    ("money", "Money"),
    ("percent", "Percent"),
    ("boolean", "Checkbox"),
    ("date", "Date"),
    ("datetime", "Date and time"),
    ("email", "E-mail"),
    ("phone", "Phone"),
    ("url", "Web address"),
    ("picklist", "Picklist"),
];

/// The custom-field admin page's context.
pub fn admin_context(
    chrome: &Chrome,
    schema: &Value,
    submitted: &Value,
    errors: &[FieldError],
    flash: Option<&str>,
) -> Value {
    let mut rows: Vec<Value> = schema["fields"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, f)| {
            json!({"name": name, "label": f["label"], "type": f["type"], "required": f["required"],
                   "custom": f["custom"].as_bool().unwrap_or(false), "help": f["help"],
                   "options": f["options"].as_array().map(|o| o.iter().map(|x| s(&x["label"])).collect::<Vec<_>>().join(", "))})
        })
        .collect();
    // The tenant's own fields first: they are what this page changes.
    rows.sort_by_key(|r| !r["custom"].as_bool().unwrap_or(false));
    let err = |k: &str| -> Vec<String> {
        errors
            .iter()
            .filter(|e| e.field == k || e.field.starts_with(&format!("{k}[")))
            .map(|e| e.message.clone())
            .collect()
    };
    let known = ["label", "name", "type", "options", "required", "help"];
    let other: Vec<String> = errors
        .iter()
        .filter(|e| {
            !known
                .iter()
                .any(|k| e.field == *k || e.field.starts_with(&format!("{k}[")))
        })
        .map(|e| e.message.clone())
        .collect();
    let selected = submitted["type"].as_str().unwrap_or("text");
    let types: Vec<Value> = CUSTOM_FIELD_TYPES
        .iter()
        .map(|(v, l)| json!({"value": v, "label": l, "selected": *v == selected}))
        .collect();
    let object = s(&schema["object"]);
    json!({
        "chrome": chrome,
        "title": format!("Fields of {}", s(&schema["plural_label"]).to_lowercase()),
        "admin_page": "fields",
        "object": object,
        "object_label": schema["label"],
        "plural_label": schema["plural_label"],
        "rows": rows,
        "types": types,
        "form": submitted,
        "errors": {"label": err("label"), "name": err("name"), "type": err("type"), "options": err("options"), "help": err("help")},
        "other_errors": other,
        "has_errors": !errors.is_empty(),
        "flash": flash,
        "action": format!("/app/admin/fields/{object}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_and_decimals_kept() {
        assert_eq!(group_thousands("2782.50"), "2,782.50");
        assert_eq!(group_thousands("-1234567"), "-1,234,567");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(group_thousands("abc"), "abc");
        assert_eq!(trim_decimal("25.0000"), "25");
        assert_eq!(trim_decimal("12.500"), "12.5");
        assert_eq!(trim_decimal("100"), "100");
        assert_eq!(
            short_datetime("2026-11-24T21:59:49.044286Z"),
            "2026-11-24 21:59 UTC"
        );
    }

    #[test]
    fn issue_paths_get_labels_with_row_numbers() {
        let schema = json!({"fields": {"lines": {"label": "Lines", "lines": {"fields": {"quantity": {"label": "Quantity"}}}}}});
        assert_eq!(
            issue_label(&schema, "lines[1].quantity"),
            "Lines, row 2: Quantity"
        );
        assert_eq!(issue_label(&schema, "lines"), "Lines");
        assert_eq!(dom_id("lines[1].quantity"), "f-lines-1--quantity");
    }
}

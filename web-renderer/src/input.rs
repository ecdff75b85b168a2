//! A submitted HTML form back into the JSON body the REST API takes, guided by the form
//! schema: inputs are named by the API's paths (`title`, `lines[0].quantity`), values
//! are typed by the field (integers as numbers, checkboxes as booleans, decimals as
//! strings), and a value that does not parse is passed on as written, so the API's own
//! validation reports it next to its field. Names starting with `_` are the page's own
//! (`_csrf`, `_version`, `_title.customer`).

use serde_json::{Map, Value};

/// What a form submitted.
#[derive(Debug, Default, Clone)]
pub struct FormInput {
    /// The body for POST (create) or PATCH (update).
    pub body: Value,
    /// Titles of the chosen referenced records, by input path, to show them again when
    /// the form comes back with errors.
    pub titles: Map<String, Value>,
    /// The record version the form was based on (`_version`).
    pub version: Option<i64>,
}

fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The typed value of one field from its submitted strings; None when left empty.
fn convert(fs: &Value, vals: &[&str]) -> Option<Value> {
    let widget = fs["widget"].as_str().unwrap_or("text");
    match widget {
        "checkbox" => Some(Value::Bool(
            vals.last().is_some_and(|v| *v == "true" || *v == "on"),
        )),
        "multiselect" => {
            let items: Vec<Value> = vals
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_string()))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        _ => {
            let raw = vals.last().copied().unwrap_or("");
            let t = if widget == "textarea" {
                raw.trim_end()
            } else {
                raw.trim()
            };
            if t.is_empty() {
                return None;
            }
            Some(match widget {
                "integer" => t
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(t.into())),
                "decimal" | "money" => Value::String(t.replace([' ', ','], "")),
                // datetime-local gives minutes without a zone; the form says UTC.
                "datetime" if t.len() == 16 => Value::String(format!("{t}:00Z")),
                "json" => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.into())),
                _ => Value::String(t.into()),
            })
        }
    }
}

fn writable(fs: &Value) -> bool {
    !crate::view::is_read_only(fs)
}

/// Whether a line holds nothing but its defaults (a blank row left in the table).
fn blank_line(child_fields: &Map<String, Value>, line: &Map<String, Value>) -> bool {
    line.iter().all(|(k, v)| {
        k != "id"
            && child_fields.get(k).is_some_and(|fs| {
                v.is_null()
                    || fs.get("default").is_some_and(|d| {
                        d == v
                            || (d.is_number()
                                && v.as_str().and_then(|vs| vs.parse::<f64>().ok()) == d.as_f64())
                    })
                    || (fs["widget"] == "checkbox" && v == &Value::Bool(false))
            })
    })
}

/// The JSON body of a submitted form. `update`: the record exists, so a field left
/// empty is sent as null (to clear it); on create it is left out (so defaults apply).
pub fn form_to_json(schema: &Value, pairs: &[(String, String)], update: bool) -> FormInput {
    let mut body = Map::new();
    let fields = schema["fields"].as_object().cloned().unwrap_or_default();
    let submitted = |name: &str| pairs.iter().any(|(k, _)| k == name);
    for (name, fs) in &fields {
        if !writable(fs) {
            continue;
        }
        if fs["type"] == "children" {
            let prefix = format!("{name}[");
            if !submitted(&format!("_lines.{name}")) {
                continue;
            }
            // Row indices in the order they appear (rows may have been removed or added).
            let mut order: Vec<String> = Vec::new();
            for (k, _) in pairs {
                if let Some(rest) = k.strip_prefix(&prefix) {
                    if let Some((i, _)) = rest.split_once(']') {
                        if !order.iter().any(|o| o == i) {
                            order.push(i.to_string());
                        }
                    }
                }
            }
            let child_fields = fs["lines"]["fields"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut lines = Vec::new();
            for i in order {
                let mut line = Map::new();
                let id_key = format!("{name}[{i}].id");
                if let Some(id) = values(pairs, &id_key).last().filter(|v| !v.is_empty()) {
                    line.insert("id".into(), Value::String(id.to_string()));
                }
                for (c, cfs) in &child_fields {
                    let key = format!("{name}[{i}].{c}");
                    if !writable(cfs) || !submitted(&key) {
                        continue;
                    }
                    match convert(cfs, &values(pairs, &key)) {
                        Some(v) => {
                            line.insert(c.clone(), v);
                        }
                        None => {
                            line.insert(c.clone(), Value::Null);
                        }
                    }
                }
                if line.contains_key("id") || !blank_line(&child_fields, &line) {
                    // Empty cells are left out of a line, so its defaults apply.
                    line.retain(|_, v| !v.is_null());
                    lines.push(Value::Object(line));
                }
            }
            body.insert(name.clone(), Value::Array(lines));
            continue;
        }
        if !submitted(name) {
            continue;
        }
        match convert(fs, &values(pairs, name)) {
            Some(v) => {
                body.insert(name.clone(), v);
            }
            None if update => {
                body.insert(name.clone(), Value::Null);
            }
            None => {}
        }
    }
    let titles: Map<String, Value> = pairs
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("_title.")
                .filter(|_| !v.is_empty())
                .map(|p| (p.to_string(), Value::String(v.clone())))
        })
        .collect();
    let version = values(pairs, "_version")
        .last()
        .and_then(|v| v.parse::<i64>().ok());
    FormInput {
        body: Value::Object(body),
        titles,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"fields": {
            "title": {"name": "title", "type": "text", "widget": "text"},
            "count": {"name": "count", "type": "integer", "widget": "integer"},
            "active": {"name": "active", "type": "boolean", "widget": "checkbox"},
            "total": {"name": "total", "type": "money", "widget": "money", "read_only": true},
            "lines": {"name": "lines", "type": "children", "widget": "lines", "read_only": true, "lines": {"fields": {
                "description": {"name": "description", "type": "text", "widget": "text"},
                "quantity": {"name": "quantity", "type": "decimal", "widget": "decimal", "default": 1},
                "amount": {"name": "amount", "type": "money", "widget": "money", "read_only": true}
            }}}
        }})
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_typed_by_their_field_and_blank_rows_dropped() {
        let input = form_to_json(
            &schema(),
            &pairs(&[
                ("title", " Offer "),
                ("count", "12"),
                ("active", "false"),
                ("active", "true"),
                ("total", "999"),
                ("_lines.lines", ""),
                ("lines[0].description", "Consulting"),
                ("lines[0].quantity", "1,000.5"),
                ("lines[7].description", ""),
                ("lines[7].quantity", "1"),
                ("lines[3].description", "Licence"),
                ("lines[3].quantity", ""),
                ("_title.customer", "Acme"),
                ("_version", "3"),
            ]),
            false,
        );
        assert_eq!(
            input.body,
            json!({"title": "Offer", "count": 12, "active": true, "lines": [
                {"description": "Consulting", "quantity": "1000.5"},
                {"description": "Licence"}]})
        );
        assert_eq!(input.titles["customer"], "Acme");
        assert_eq!(input.version, Some(3));
    }

    #[test]
    fn a_bad_number_is_passed_on_for_the_api_to_report() {
        let input = form_to_json(&schema(), &pairs(&[("count", "many"), ("title", "")]), true);
        assert_eq!(input.body, json!({"title": null, "count": "many"}));
    }
}
